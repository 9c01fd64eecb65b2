package fabric

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/weftcloud/weft/api"
)

// EventLog keeps the last events in memory and hands new ones to followers.
// Events are informational: they are not part of the durable state, so a
// restarted controller starts a new log (sequence numbers go on from zero).
type EventLog struct {
	mu      sync.Mutex
	events  []api.Event // oldest first; the last size are kept (Add)
	size    int
	seq     uint64
	changed chan struct{} // closed and replaced on every append
	log     *slog.Logger
}

// NewEventLog keeps the last size events.
func NewEventLog(size int, logger *slog.Logger) *EventLog {
	return &EventLog{size: size, changed: make(chan struct{}), log: logger}
}

// Add records an event, stamping its sequence number and time.
func (l *EventLog) Add(e api.Event) {
	l.mu.Lock()
	l.seq++
	e.Seq = l.seq
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	if e.Level == "" {
		e.Level = "info"
	}
	// The slice holds up to twice the events kept, and drops the older
	// half at once: moving every kept event down by one at each Add cost
	// a copy of the whole log per event (20,000 placements, 20 million
	// events moved).
	if len(l.events) == 2*l.size {
		l.events = l.events[:copy(l.events, l.events[l.size:])]
	}
	l.events = append(l.events, e)
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()

	attrs := []any{"type", e.Type}
	for _, kv := range [][2]string{{"service", e.Service}, {"role", e.Role}, {"instance", e.Instance}, {"node", e.Node}} {
		if kv[1] != "" {
			attrs = append(attrs, kv[0], kv[1])
		}
	}
	level := slog.LevelInfo
	switch e.Level {
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	l.log.Log(context.Background(), level, e.Message, attrs...)
}

// Since returns the kept events with Seq > since, and a channel closed when
// another event arrives.
func (l *EventLog) Since(since uint64) ([]api.Event, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []api.Event
	for _, e := range l.events[max(0, len(l.events)-l.size):] {
		if e.Seq > since {
			out = append(out, e)
		}
	}
	return out, l.changed
}
