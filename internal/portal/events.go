package portal

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/weftcloud/weft/api"
)

// tickEvery is how often /events sends a tick: pages refresh their live
// parts on it too, for what the event stream does not report (a VM's
// state as its guest agent reports it, health changes).
const tickEvery = 5 * time.Second

// events relays the API's event stream (GET /v1/events?follow=1), as the
// session's token may read it, as server-sent events: "change" with the
// event as data, and "tick" every tickEvery. Events from before the
// stream opened are not sent.
func (p *portal) events(w http.ResponseWriter, r *http.Request, s *session) error {
	flusher, ok := w.(http.Flusher)
	if !ok {
		return api.Errorf(api.CodeInternal, "this connection cannot stream")
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	// One writer at a time, the relay and the ticks, and none once this
	// handler returned.
	var mu sync.Mutex
	closed := false
	defer func() { mu.Lock(); closed = true; mu.Unlock() }()
	send := func(event string, data []byte) error {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			return context.Canceled
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
			return err
		}
		flusher.Flush()
		return nil
	}
	opened := time.Now()
	go func() {
		// Ends when ctx does. A tenant's token follows its own tenant's
		// events only (the API filters them).
		err := s.api.FollowEvents(ctx, 0, func(e api.Event) error {
			if e.Time.Before(opened) {
				return nil
			}
			data, _ := json.Marshal(e)
			return send("change", data)
		})
		if ctx.Err() == nil {
			p.log.Debug("portal: event stream ended", "err", err)
		}
	}()
	t := time.NewTicker(tickEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if send("tick", []byte("{}")) != nil {
				return nil
			}
		}
	}
}
