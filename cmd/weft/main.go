// Command weft is the whole of Weft in one binary: the controller, the node
// agent, the guest agent, the storage service, `weft dev` and the client verbs.
package main

import (
	"os"

	"github.com/weftcloud/weft/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
