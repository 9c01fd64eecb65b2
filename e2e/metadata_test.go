package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDrainIsAnnouncedToTheInstanceAndRunsItsOnStop deploys a process
// instance that watches its scheduled events through its metadata
// service, drains its node, and checks that it saw the relocation before
// it was stopped and that its onStop ran before SIGTERM. The instance
// acknowledges the event, as Azure's guidance says an instance that is
// ready should: the stop goes ahead then, not at the end of a notice long
// enough for a loaded machine's instance to poll in.
func TestDrainIsAnnouncedToTheInstanceAndRunsItsOnStop(t *testing.T) {
	parallel(t)
	c := newCluster(t, 2)
	dir := filepath.Join(c.dir, "models", "watcher")
	os.MkdirAll(filepath.Join(dir, "package"), 0o755)
	mark := filepath.Join(c.dir, "mark")
	writeFile(t, filepath.Join(dir, "package", "watch.sh"), `#!/bin/sh
trap 'echo "term $WEFT_INSTANCE" >> "$MARK"; exit 0' TERM
while :; do
	if curl -sf -H 'Metadata: true' -H "Authorization: Bearer $WEFT_METADATA_TOKEN" "$WEFT_METADATA/metadata/scheduledevents" > events.json &&
		grep -q Relocate events.json && [ ! -e acked ]; then
		echo "saw $(cat events.json)" >> "$MARK"
		id=$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' events.json)
		curl -sf -X POST -H 'Metadata: true' -H "Authorization: Bearer $WEFT_METADATA_TOKEN" \
			-d "{\"eventId\":\"$id\"}" "$WEFT_METADATA/metadata/scheduledevents" && touch acked
	fi
	sleep 0.2
done
`)
	os.Chmod(filepath.Join(dir, "package", "watch.sh"), 0o755)
	model := writeFile(t, filepath.Join(dir, "service.yaml"), `name: watcher
roles:
  - name: w
    kind: worker
    runtime: process
    package: ./package
    command: ["./watch.sh"]
    instances: 1
    stopNotice: 60s
    stopGrace: 5s
    onStop: ["sh", "-c", "echo \"onstop $WEFT_INSTANCE\" >> \"$MARK\""]
    settings: {MARK: `+mark+`}
`)
	c.mustWeft("deploy", "-f", model, "--wait", "--timeout", "30s")
	first := c.instances("watcher")[0]
	c.mustWeft("node", "drain", first.Node)
	c.waitFor("the instance moved", 45*time.Second, func() bool {
		ins := c.instances("watcher")
		data, _ := os.ReadFile(mark)
		return len(ins) == 1 && ins[0].ID != first.ID && c.healthy("watcher") == 1 &&
			strings.Contains(string(data), "term "+first.ID)
	})
	// The watcher notes the event until its acknowledgement is taken:
	// what counts is the order of the first of each.
	noted := readFile(t, mark)
	saw, onStop, term := strings.Index(noted, "saw "), strings.Index(noted, "onstop "+first.ID), strings.Index(noted, "term "+first.ID)
	if saw < 0 || onStop < saw || term < onStop || !strings.Contains(noted, `"instance":"`+first.ID+`"`) {
		t.Fatalf("what the instance noted:\n%s\nwant its Relocate event seen, then onStop, then SIGTERM", noted)
	}
}
