package cli

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// TestOneFlagPerIdea: the same idea has the same flag everywhere; the
// old spellings still set it and are not shown in --help.
func TestOneFlagPerIdea(t *testing.T) {
	for _, tc := range []struct {
		cmd      []string
		old, now string
		value    string
	}{
		{[]string{"vm", "create"}, "cpus", "cpu", "2"},
		{[]string{"vm", "create"}, "disk", "disk-size", "512Mi"},
		{[]string{"vm", "resize"}, "cpus", "cpu", "2"},
		{[]string{"vm", "attach-disk"}, "size", "disk-size", "1Gi"},
		{[]string{"drive", "create"}, "size", "disk-size", "1Gi"},
		{[]string{"agent"}, "server", "addr", "http://10.0.0.1:7070"},
		{[]string{"server"}, "lb-host", "host", "10.0.0.1"},
	} {
		t.Run(strings.Join(tc.cmd, " ")+" --"+tc.old, func(t *testing.T) {
			root := newApp(io.Discard, io.Discard).rootCommand()
			cmd, _, err := root.Find(tc.cmd)
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.ParseFlags([]string{"--" + tc.old, tc.value}); err != nil {
				t.Fatalf("--%s: %v", tc.old, err)
			}
			if f := cmd.Flags().Lookup(tc.now); f == nil || f.Value.String() != tc.value {
				t.Errorf("--%s %s did not set --%s: %v", tc.old, tc.value, tc.now, f)
			}
			var help bytes.Buffer
			cmd.SetOut(&help)
			cmd.Help()
			if !strings.Contains(help.String(), "--"+tc.now+" ") || strings.Contains(help.String(), "--"+tc.old+" ") {
				t.Errorf("help shows --%s: %v, --%s: %v; want only --%s",
					tc.now, strings.Contains(help.String(), "--"+tc.now+" "), tc.old, strings.Contains(help.String(), "--"+tc.old+" "), tc.now)
			}
		})
	}
}

// TestServerHeartbeatTimingFlags: weft server tells its nodes how often
// to report (fabric: the interval grows with the fleet past
// --heartbeat-rate); the liveness flags, those of the node-down wave
// guard too, are offered, and parsed.
func TestServerHeartbeatTimingFlags(t *testing.T) {
	root := newApp(io.Discard, io.Discard).rootCommand()
	cmd, _, _ := root.Find([]string{"server"})
	var help bytes.Buffer
	cmd.SetOut(&help)
	cmd.Help()
	for _, flag := range []string{"--heartbeat-interval ", "--heartbeat-rate ", "--heartbeat-ttl ", "--down-wave-fraction ", "--down-wave-nodes ", "--down-wave-rate ", "--down-wave-halt "} {
		if !strings.Contains(help.String(), flag) {
			t.Errorf("weft server --help does not offer %s:\n%s", flag, help.String())
		}
	}
	if err := cmd.ParseFlags([]string{"--heartbeat-interval", "1s", "--heartbeat-rate", "50"}); err != nil {
		t.Fatal(err)
	}
	if iv, rate := cmd.Flags().Lookup("heartbeat-interval").Value.String(), cmd.Flags().Lookup("heartbeat-rate").Value.String(); iv != "1s" || rate != "50" {
		t.Errorf("--heartbeat-interval %s, --heartbeat-rate %s; want 1s and 50", iv, rate)
	}
}
