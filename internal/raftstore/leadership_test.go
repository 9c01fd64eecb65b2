package raftstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestVerifyRoundsStartAfterTheRead: reads waiting at once share one
// leadership check, and a read that comes while a check runs waits for the
// next one (the running one may have begun before the read).
func TestVerifyRoundsStartAfterTheRead(t *testing.T) {
	var v verifyRounds
	started := make(chan chan error, 10)
	check := func() raft.Future {
		f := make(chan error)
		started <- f
		return chanFuture(f)
	}
	ctx := context.Background()
	first := make(chan error, 1)
	go func() { first <- v.join(ctx, check) }()
	round1 := <-started // the first read's round runs
	late := make(chan error, 3)
	for range 3 {
		go func() { late <- v.join(ctx, check) }()
	}
	// The three reads that came during round 1 are not answered by it.
	for v.waiting() < 3 {
		time.Sleep(time.Millisecond)
	}
	round1 <- nil
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-late:
		t.Fatalf("a read that came during round 1 was answered by it (%v)", err)
	default:
	}
	round2 := <-started
	round2 <- errors.New("not leader")
	for range 3 {
		if err := <-late; err == nil || err.Error() != "not leader" {
			t.Errorf("a read of round 2: %v, want round 2's answer", err)
		}
	}
	select {
	case <-started:
		t.Error("a third round ran for no read")
	default:
	}
}

// waiting is how many reads wait for the next round.
func (v *verifyRounds) waiting() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.next != nil {
		return v.next.reads
	}
	return 0
}

// chanFuture is a raft.Future answered through a channel.
type chanFuture chan error

func (f chanFuture) Error() error { return <-f }
