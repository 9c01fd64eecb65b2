// Package peercopy keeps a controller server holding the content-addressed
// objects the cluster uses (packages, image files), which live in each
// server's own storage rather than in the replicated state (they are
// megabytes to gigabytes): a server copies what it lacks from the others,
// so an object outlives the server it was uploaded to.
package peercopy

import (
	"context"
	"log/slog"
	"time"

	"github.com/weftcloud/weft/internal/state"
)

type localOnlyKey struct{}

// LocalOnly marks a read as another server's copy: it is answered from
// this server's own storage only, so that servers missing an object do not
// ask each other in circles.
func LocalOnly(ctx context.Context) context.Context {
	return context.WithValue(ctx, localOnlyKey{}, true)
}

// IsLocalOnly says whether ctx is another server's copy.
func IsLocalOnly(ctx context.Context) bool { return ctx.Value(localOnlyKey{}) != nil }

// Keep copies the objects missing lists from the other servers with
// fetch, each time the replicated state changes (at most once a
// keepSpacing) and every 30 seconds (2 while a copy fails), until ctx
// ends. what names the objects in logs.
func Keep(ctx context.Context, st state.Store, log *slog.Logger, what string, missing func(context.Context) []string, fetch func(context.Context, string) error) {
	var idx uint64
	for {
		began := time.Now()
		retry := false
		for _, id := range missing(ctx) {
			if err := fetch(ctx, id); err != nil && ctx.Err() == nil {
				retry = true
				log.Warn(what+" not copied from another server yet", "id", id, "err", err)
			}
		}
		wait := 30 * time.Second
		if retry {
			wait = 2 * time.Second
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		next, err := st.Wait(wctx, idx)
		cancel()
		if err == nil {
			idx = next
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(began.Add(keepSpacing))):
		}
	}
}

// keepSpacing is the least time between two of Keep's rounds. A round
// lists every object the state refers to (for packages, every instance's:
// milliseconds at 20,000 instances), and a large fleet's state changes
// hundreds of times a second; a copy made up to this late costs nothing,
// since a server asked for an object it lacks fetches it then.
const keepSpacing = time.Second
