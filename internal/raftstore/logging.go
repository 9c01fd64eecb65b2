package raftstore

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sort"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// newHCLogger gives hashicorp/raft, which logs through hclog, a logger that
// ends in log: hclog writes JSON lines and hclogWriter turns each back into
// one structured slog record.
func newHCLogger(log *slog.Logger) hclog.Logger {
	level := hclog.Info
	if log.Enabled(context.Background(), slog.LevelDebug) {
		level = hclog.Debug
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:        "raft",
		Level:       level,
		Output:      hclogWriter{log},
		JSONFormat:  true,
		DisableTime: true,
	})
}

type hclogWriter struct{ log *slog.Logger }

func (w hclogWriter) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		w.line(line)
	}
	return len(p), nil
}

func (w hclogWriter) line(line []byte) {
	var fields map[string]any
	if err := json.Unmarshal(line, &fields); err != nil {
		w.log.Info(strings.TrimSpace(string(line)), "component", "raft")
		return
	}
	level := slog.LevelInfo
	switch fields["@level"] {
	case "trace", "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	msg, _ := fields["@message"].(string)
	component, _ := fields["@module"].(string)
	keys := make([]string, 0, len(fields))
	for k := range fields {
		if !strings.HasPrefix(k, "@") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	attrs := make([]any, 0, 2+2*len(keys))
	attrs = append(attrs, "component", component)
	for _, k := range keys {
		attrs = append(attrs, k, fields[k])
	}
	w.log.Log(context.Background(), level, msg, attrs...)
}
