// Package buildinfo holds the version stamped into the binary at build time.
package buildinfo

// Version is set by the Makefile through -ldflags; "dev" in plain go builds.
var Version = "dev"
