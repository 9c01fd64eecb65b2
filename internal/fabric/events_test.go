package fabric

import (
	"log/slog"
	"testing"

	"github.com/weftcloud/weft/api"
)

// TestEventLogKeepsTheLastEvents: the log hands out the last size events,
// oldest first, however many came before.
func TestEventLogKeepsTheLastEvents(t *testing.T) {
	l := NewEventLog(3, slog.New(slog.DiscardHandler))
	for added := 1; added <= 10; added++ {
		l.Add(api.Event{Type: "x"})
		got, _ := l.Since(0)
		want := min(added, 3)
		if len(got) != want {
			t.Fatalf("after %d events, %d kept; want %d", added, len(got), want)
		}
		for i, e := range got {
			if seq := uint64(added - want + 1 + i); e.Seq != seq {
				t.Fatalf("after %d events, event %d has seq %d; want %d", added, i, e.Seq, seq)
			}
		}
	}
	if got, _ := l.Since(9); len(got) != 1 || got[0].Seq != 10 {
		t.Fatalf("Since(9) = %+v; want the event of seq 10", got)
	}
}
