package storage

import (
	"net/http"
	"sync"
	"sync/atomic"
)

// Usage is what the front ends of one storage server count and enforce
// per account. Safe for concurrent use; a nil *Usage counts and refuses
// nothing.
type Usage struct {
	counts sync.Map // account -> *atomic.Int64
	full   atomic.Pointer[map[string]string]
}

// count counts a request of account: every request that resolved its
// account and authenticated, whatever its answer, as Azure counts
// transactions; not preflight requests, nor those refused before they
// reached a service.
func (u *Usage) count(account string) {
	if u == nil {
		return
	}
	c, ok := u.counts.Load(account)
	if !ok {
		c, _ = u.counts.LoadOrStore(account, new(atomic.Int64))
	}
	c.(*atomic.Int64).Add(1)
}

// Transactions returns every account's requests since the process
// started (counts only grow).
func (u *Usage) Transactions() map[string]int64 {
	out := map[string]int64{}
	u.counts.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

// SetFull names the accounts that may not grow, each with the reason (its
// tenant's storage quota is used), replacing the last set.
func (u *Usage) SetFull(full map[string]string) { u.full.Store(&full) }

// refuse answers a request that could grow a full account: every PUT,
// POST, PATCH and MERGE (uploads, messages, entities, and also metadata
// and batches), with Azure's answer to writes an account may not make.
// Reads and DELETEs go on, so the tenant can free space.
func (u *Usage) refuse(r *http.Request, account string) error {
	if u == nil {
		return nil
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodDelete, http.MethodOptions:
		return nil
	}
	full := u.full.Load()
	if full == nil {
		return nil
	}
	if why, ok := (*full)[account]; ok {
		return Errorf(http.StatusForbidden, "InsufficientAccountPermissions", "Write operations are not allowed: %s.", why)
	}
	return nil
}
