// Command hello is the example service of `make run`: a web role that greets
// and a worker role that ticks. It shows what an instance gets from Weft: its
// port in WEFT_PORT_HTTP, its name in WEFT_INSTANCE, its settings as
// environment variables, and SIGTERM before it is stopped.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if os.Getenv("WEFT_ROLE") == "worker" || (len(os.Args) > 1 && os.Args[1] == "worker") {
		work(ctx)
		return
	}
	if err := serve(ctx); err != nil {
		log.Fatal(err)
	}
}

// hoard keeps what /hog allocates.
var hoard [][]byte

// serve answers until ctx ends, then lets in-flight requests finish.
func serve(ctx context.Context) error {
	port := os.Getenv("WEFT_PORT_HTTP")
	if port == "" {
		port = "8080"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s: %s\n", os.Getenv("WEFT_INSTANCE"), os.Getenv("GREETING"))
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		// Touch a file named "unhealthy" in the instance's folder to fail
		// the probe and watch the fabric restart it.
		if _, err := os.Stat("unhealthy"); err == nil {
			http.Error(w, "unhealthy", http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("/hog", func(w http.ResponseWriter, r *http.Request) {
		// Allocate (and touch) ?mb= MiB and keep it: a way to watch the
		// role's memory limit end the instance and the fabric heal it.
		mb, _ := strconv.Atoi(r.URL.Query().Get("mb"))
		for i := 0; i < mb; i++ {
			block := make([]byte, 1<<20)
			for j := range block {
				block[j] = 1
			}
			hoard = append(hoard, block)
		}
		fmt.Fprintf(w, "holding %d MiB\n", len(hoard))
	})
	srv := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Printf("listening on :%s", port)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Printf("stopping: finishing in-flight requests")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// work ticks every two seconds until ctx ends.
func work(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			log.Printf("stopping after %d ticks", n-1)
			return
		case <-t.C:
			log.Printf("tick %d", n)
		}
	}
}
