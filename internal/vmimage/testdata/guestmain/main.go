// Command guestmain is the guest agent alone, for vmimage's boot test while
// cmd/weft has no `guest` command: installed as /usr/bin/weft, it runs as
// `weft guest --init`.
package main

import (
	"os"

	"github.com/weftcloud/weft/internal/guest"
)

func main() {
	os.Exit(guest.Main(os.Args[1:]))
}
