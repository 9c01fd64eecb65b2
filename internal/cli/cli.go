// Package cli is the weft command line: the daemons' commands and the client
// verbs. It talks to the controller only through package client.
package cli

import (
	"fmt"
	"os"
)

// Main runs the command line and returns the exit code.
func Main(args []string) int {
	fmt.Fprintln(os.Stderr, "weft: not implemented yet")
	return 1
}
