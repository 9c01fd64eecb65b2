package pkgarchive

import (
	"bytes"
	"errors"
	"testing"

	"github.com/weftcloud/weft/internal/untar/untartest"
)

// FuzzUnpack checks and unpacks arbitrary packages (the tar the fuzzer
// makes, gzip'd) into a sandbox's root: whatever the archive, nothing
// outside it changes, and a package Check accepts is not refused as unsafe
// by Unpack. The seeds in testdata/fuzz/FuzzUnpack include the attacks.
//
// Run it with: go test -run '^$' -fuzz FuzzUnpack -fuzzminimizetime 2s ./internal/pkgarchive
// (minimizing each new input takes most of the time otherwise). The sandbox
// only watches its own folders: a regression writing through a link to an
// absolute path would go unseen and touch the machine, so fuzz as an
// unprivileged user or on a machine you can lose.
func FuzzUnpack(f *testing.F) {
	f.Add(untartest.Tar(untartest.LinkChain(untartest.HostName)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkg := untartest.Gzip(data)
		checkErr := Check(bytes.NewReader(pkg), 1<<20)
		sb := untartest.NewSandbox(t)
		_, err := Unpack(bytes.NewReader(pkg), sb.Root, 1<<20, nil)
		sb.Check(t)
		if checkErr == nil && errors.Is(err, ErrUnsafe) {
			t.Errorf("Check accepted a package Unpack refuses: %v", err)
		}
	})
}
