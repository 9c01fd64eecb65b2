package guest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// Main is `weft guest [--port PATH] [--init]` (a leading "guest" in args is
// skipped). With --init, or when it is PID 1, it first sets the machine up
// as init does (mounts, hostname, network, reaping orphans), and then never
// returns. Otherwise it serves the port until SIGTERM or SIGINT and returns
// the exit code.
func Main(args []string) int {
	if len(args) > 0 && args[0] == "guest" {
		args = args[1:]
	}
	fs := flag.NewFlagSet("weft guest", flag.ContinueOnError)
	port := fs.String("port", DefaultPortPath, "the virtio-serial port to serve")
	mdListen := fs.String("metadata", DefaultMetadataListen, `where to serve the instance metadata service in the guest ("none": nowhere)`)
	asInit := fs.Bool("init", false, "act as the VM's init (PID 1): mount file systems, set up the network, reap orphans")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	isInit := *asInit || os.Getpid() == 1

	var console io.Writer = os.Stderr
	log := slog.New(slog.NewTextHandler(console, nil))
	if isInit {
		if c := setupInit(log); c != nil {
			console = c
			log = slog.New(slog.NewTextHandler(c, nil))
		}
	}
	log = log.With("component", "weft-guest")
	a := New(Options{Logger: log, Console: console, MetadataListen: *mdListen})

	ctx := context.Background()
	if isInit {
		go reapOrphans(ctx, a.procs)
		go configureNetwork(ctx, a.procs, log)
	} else {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
		defer stop()
	}
	log.Info("serving", "port", *port, "init", isInit, "sinceBoot", uptime())
	err := a.Run(ctx, *port)
	if isInit {
		// PID 1 must not exit: the kernel would panic.
		select {}
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "weft guest:", err)
		return 1
	}
	return 0
}
