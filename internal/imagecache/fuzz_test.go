package imagecache_test

import (
	"bytes"
	"testing"

	"github.com/weftcloud/weft/internal/imagecache"
	"github.com/weftcloud/weft/internal/untar"
	"github.com/weftcloud/weft/internal/untar/untartest"
)

// FuzzUnpack unpacks arbitrary root filesystem tars, as a node does, into
// a sandbox's root: whatever the archive, nothing outside it changes. The
// seeds in testdata/fuzz/FuzzUnpack include the attacks (links out, a
// folder chmod through a link, hard links out, link chains), with targets
// relative to the root so that they aim at the sandbox's host folder.
//
// Run it with: go test -run '^$' -fuzz FuzzUnpack -fuzzminimizetime 2s ./internal/imagecache
// (minimizing each new input takes most of the time otherwise). The sandbox
// only watches its own folders: a regression writing through a link to an
// absolute path would go unseen and touch the machine, so fuzz as an
// unprivileged user or on a machine you can lose.
func FuzzUnpack(f *testing.F) {
	f.Add(untartest.Tar(untartest.ChmodThroughLink("../../" + untartest.HostName)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		sb := untartest.NewSandbox(t)
		untar.Extract(bytes.NewReader(data), sb.Root, imagecache.Options(1<<20, nil))
		sb.Check(t)
	})
}
