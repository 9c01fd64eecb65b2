package storage

import (
	"sync"
	"sync/atomic"
)

// Transactions counts the requests each account made of the services
// (what metering bills as storage transactions): every request that
// resolved its account and authenticated, whatever its answer, as Azure
// counts them; not preflight requests, nor those refused before they
// reached a service. Counts only grow, from zero when the process
// started. Safe for concurrent use; a nil *Transactions counts nothing.
type Transactions struct {
	counts sync.Map // account -> *atomic.Int64
}

func (t *Transactions) add(account string) {
	if t == nil {
		return
	}
	c, ok := t.counts.Load(account)
	if !ok {
		c, _ = t.counts.LoadOrStore(account, new(atomic.Int64))
	}
	c.(*atomic.Int64).Add(1)
}

// Counts returns every account's count so far.
func (t *Transactions) Counts() map[string]int64 {
	out := map[string]int64{}
	t.counts.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}
