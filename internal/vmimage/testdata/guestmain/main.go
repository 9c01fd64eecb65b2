// Command guestmain is the guest agent alone, for the tests that boot VMs
// while cmd/weft has no `guest` command: installed as /usr/bin/weft, it runs
// as `weft guest --init`. `weft memcheck` is the memory checker of the qemu
// driver's live migration stress test (memcheck.go).
package main

import (
	"os"

	"github.com/weftcloud/weft/internal/guest"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "memcheck" {
		os.Exit(memcheck(os.Args[2:]))
	}
	os.Exit(guest.Main(os.Args[1:]))
}
