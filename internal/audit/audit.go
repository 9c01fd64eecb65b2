// Package audit keeps the log of every change made through the API: who
// (the caller's identity), what (method and path, and the answer's
// status), when, and from where. It lives in the controller's replicated
// state, so it survives restarts and leader changes, and the operator
// reads it with weft audit or on the portal.
package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/access"
	"github.com/weftcloud/weft/internal/state"
)

// Kind is the state kind of audit entries, keyed by time so that they list
// oldest first.
const Kind = "audit"

// DefaultMax is how many entries are kept: older ones are dropped every
// 1,000 writes, so up to 1,000 more stand meanwhile.
const DefaultMax = 100_000

// Log records and lists audit entries.
type Log struct {
	st      state.Store
	log     *slog.Logger
	max     int
	now     func() time.Time
	written atomic.Int64 // entries since the last trim
}

// New returns the log over st, keeping at most max entries (DefaultMax
// when max <= 0).
func New(st state.Store, max int, logger *slog.Logger) *Log {
	if max <= 0 {
		max = DefaultMax
	}
	return &Log{st: st, log: logger, max: max, now: func() time.Time { return time.Now().UTC() }}
}

// Record stores one entry; it is durable when Record returns nil.
func (l *Log) Record(ctx context.Context, e api.AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b := make([]byte, 4)
	rand.Read(b)
	// Fixed-width nanoseconds sort as numbers; the suffix keeps two entries
	// of the same instant apart.
	key := fmt.Sprintf("%020d-%s", e.Time.UnixNano(), hex.EncodeToString(b))
	ops := []state.Op{{Kind: Kind, Key: key, Value: data}}
	// Trim now and then rather than on every write: listing is the cost.
	if l.written.Add(1)%1000 == 0 {
		all := l.st.List(Kind, "")
		for i := 0; i < len(all)-l.max; i++ {
			ops = append(ops, state.Op{Kind: Kind, Key: all[i].Key, Delete: true})
		}
	}
	if _, err := l.st.Apply(ctx, ops); err != nil {
		return fmt.Errorf("audit: record: %w", err)
	}
	return nil
}

// List returns the entries at or after since, oldest first, at most limit
// of the newest (all when limit <= 0).
func (l *Log) List(since time.Time, limit int) []api.AuditEntry {
	entries := l.st.List(Kind, "")
	out := make([]api.AuditEntry, 0, len(entries))
	for _, en := range entries {
		var e api.AuditEntry
		if json.Unmarshal(en.Value, &e) == nil && !e.Time.Before(since) {
			out = append(out, e)
		}
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out
}

// Middleware records every request but GET and HEAD that an operator or a
// tenant makes through next, and every sign-in, once it is answered: the
// changes, their refusals, and the plans a deploy asks for first (which
// change nothing, but say what was tried). It wraps the handler of the server that serves the request
// (the leader, after forwarding), so each change is recorded once. The
// agents' and servers' own traffic (heartbeats, replication) is not a
// change a person made and is not recorded.
func (l *Log) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := access.From(r.Context())
		if r.Method == http.MethodGet || r.Method == http.MethodHead || !recorded(r) {
			next.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		e := api.AuditEntry{Who: p.String(), From: p.Addr, Method: r.Method, Path: r.URL.Path, Status: sw.status}
		switch {
		case p.Role == access.Tenant:
			e.Tenant = p.Tenant
		case strings.HasPrefix(r.URL.Path, "/v1/"):
			e.Tenant = r.URL.Query().Get("tenant")
		}
		if err := l.Record(context.WithoutCancel(r.Context()), e); err != nil {
			// The change is made; losing its record is logged, not hidden.
			l.log.Error("audit entry not recorded", "who", e.Who, "method", e.Method, "path", e.Path, "err", err)
		}
	})
}

// recorded says whether a change is a person's: a route of the operator,
// of tenants, or signing in; not the nodes' own (registration, heartbeats,
// certificates), nor the servers' (replication), whichever credential
// they use (an agent of a server without TLS calls with the admin token).
func recorded(r *http.Request) bool {
	rule, _ := access.RuleFrom(r.Context())
	switch rule {
	case access.Operators, access.TenantRead, access.TenantWrite, access.TenantOwner:
		return true
	case access.Public:
		return r.URL.Path == "/v1/sessions"
	}
	return false
}

// statusWriter remembers the status of an answer, and passes on flushes
// (logs and exec stream).
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
