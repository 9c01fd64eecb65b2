package raftstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/weftcloud/weft/internal/state"
)

// registerOp is one client operation on register Key: a write of Value,
// or a read that saw Value (-1: the register was never written).
type registerOp struct {
	Key   int
	Write bool
	Value int
}

// registers is how many registers the clients use: porcupine checks each
// one's history alone, which keeps the check fast even when many writes
// have an unknown outcome.
const registers = 8

// register is porcupine's model of a set of independent read/write
// registers, partitioned by key.
var register = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := make([][]porcupine.Operation, registers)
		for _, op := range history {
			k := op.Input.(registerOp).Key
			byKey[k] = append(byKey[k], op)
		}
		return byKey
	},
	Init: func() any { return -1 },
	Step: func(st, in, out any) (bool, any) {
		op, res := in.(registerOp), out.(registerOp)
		if op.Write {
			return true, op.Value
		}
		return res.Value == st.(int), st
	},
	DescribeOperation: func(in, out any) string {
		if op := in.(registerOp); op.Write {
			return fmt.Sprintf("write %d", op.Value)
		}
		return fmt.Sprintf("read %d", out.(registerOp).Value)
	},
}

// TestLinearizableAcrossLeaderCrashes records the history of clients
// writing and reading one register through whichever server leads, while
// the leader is crashed twice (and restarted), and checks it with
// porcupine: every read returns the latest write acknowledged before it,
// never an older one and never a lost one.
func TestLinearizableAcrossLeaderCrashes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a cluster through two leader crashes")
	}
	nodes := newCluster(t, 3, nil)
	waitLeader(t, nodes)
	var live atomic.Pointer[[]*Store]
	publish := func() {
		var list []*Store
		for _, n := range nodes {
			if n.s != nil {
				list = append(list, n.s)
			}
		}
		live.Store(&list)
	}
	publish()

	var mu sync.Mutex
	var history []porcupine.Operation
	var next atomic.Int64
	start := time.Now()
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for client := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				op, ok := clientStep(ctx, *live.Load(), client, &next, start)
				if ok {
					mu.Lock()
					history = append(history, op)
					mu.Unlock()
				}
			}
		}()
	}
	for range 2 {
		time.Sleep(700 * time.Millisecond)
		leader := waitLeader(t, nodes)
		leader.crash()
		publish()
		waitLeader(t, nodes)
		time.Sleep(300 * time.Millisecond)
		leader.start()
		publish()
	}
	time.Sleep(500 * time.Millisecond)
	stop()
	wg.Wait()

	writes, reads := 0, 0
	for _, op := range history {
		if op.Input.(registerOp).Write {
			writes++
		} else {
			reads++
		}
	}
	t.Logf("%d writes and %d reads across two leader crashes", writes, reads)
	if writes == 0 || reads == 0 {
		t.Fatal("the history has no writes or no reads")
	}
	switch porcupine.CheckOperationsTimeout(register, history, time.Minute) {
	case porcupine.Illegal:
		t.Error("the history is not linearizable")
	case porcupine.Unknown:
		t.Skip("the checker ran out of time (a heavily loaded machine makes many outcomes unknown)")
	}
}

// clientStep runs one random operation against the current leader and
// returns it for the history; ok is false when it certainly did not
// happen (refused before reaching the log). A write whose outcome is
// unknown may have happened at any time after its call: its return is
// put at the end of time.
func clientStep(ctx context.Context, stores []*Store, client int, next *atomic.Int64, start time.Time) (porcupine.Operation, bool) {
	var leader *Store
	for _, s := range stores {
		if s.IsLeader() {
			leader = s
		}
	}
	if leader == nil {
		time.Sleep(5 * time.Millisecond)
		return porcupine.Operation{}, false
	}
	opCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	call := time.Since(start).Nanoseconds()
	key := rand.IntN(registers)
	name := "register-" + strconv.Itoa(key)
	if rand.IntN(2) == 0 {
		v := int(next.Add(1))
		_, err := leader.Apply(opCtx, []state.Op{{Kind: state.KindMeta, Key: name, Value: []byte(strconv.Itoa(v))}})
		ret := time.Since(start).Nanoseconds()
		var nl ErrNotLeader
		switch {
		case errors.As(err, &nl):
			return porcupine.Operation{}, false
		case err != nil:
			ret = math.MaxInt64 // it may still be committed
		}
		return porcupine.Operation{ClientId: client, Input: registerOp{Key: key, Write: true, Value: v}, Call: call, Output: registerOp{}, Return: ret}, true
	}
	if err := leader.Consistent(opCtx); err != nil {
		return porcupine.Operation{}, false
	}
	got := -1
	if e, ok := leader.Get(state.KindMeta, name); ok {
		got, _ = strconv.Atoi(string(e.Value))
	}
	if leader.closing.Load() {
		// Crashed since Consistent: its Get may have found its database
		// closed and answered nothing, which is no read of the register.
		return porcupine.Operation{}, false
	}
	ret := time.Since(start).Nanoseconds()
	return porcupine.Operation{ClientId: client, Input: registerOp{Key: key}, Call: call, Output: registerOp{Value: got}, Return: ret}, true
}

// TestRegisterModelCatchesStaleReads keeps the check above honest: a read
// of an overwritten value after the overwrite returned is a violation.
func TestRegisterModelCatchesStaleReads(t *testing.T) {
	stale := []porcupine.Operation{
		{ClientId: 0, Input: registerOp{Write: true, Value: 1}, Call: 0, Output: registerOp{}, Return: 10},
		{ClientId: 0, Input: registerOp{Write: true, Value: 2}, Call: 20, Output: registerOp{}, Return: 30},
		{ClientId: 1, Input: registerOp{}, Call: 40, Output: registerOp{Value: 1}, Return: 50},
	}
	if porcupine.CheckOperations(register, stale) {
		t.Error("a stale read passed as linearizable")
	}
	if !porcupine.CheckOperations(register, stale[:2]) {
		t.Error("two sequential writes failed the check")
	}
}
