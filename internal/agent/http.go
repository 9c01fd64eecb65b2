package agent

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/httpapi"
	"github.com/weftcloud/weft/internal/metrics"
	"github.com/weftcloud/weft/internal/pki"
)

// routes is the agent's own API: the servers proxy `weft logs` and `weft
// exec` here. Only callers with the token the node registered with are
// served.
func (a *Agent) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /v1/instances/{id}/logs", httpapi.Handle(a.log, a.logs))
	mux.HandleFunc("POST /v1/instances/{id}/exec", httpapi.Handle(a.log, a.exec))
	mux.Handle("GET "+metrics.Path, metrics.Handler(a.metrics))
	want := sha256.Sum256([]byte("Bearer " + a.apiToken))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Prometheus metrics: the servers' certificate is enough (a
		// scraper has no node's token; under TLS only the servers connect
		// at all, pki.AgentServeTLS). Without TLS they take the token, as
		// the rest does.
		if r.Method == http.MethodGet && r.URL.Path == metrics.Path && fromServer(r) {
			mux.ServeHTTP(w, r)
			return
		}
		got := sha256.Sum256([]byte(r.Header.Get("Authorization")))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			httpapi.WriteError(a.log, w, r, api.Errorf(api.CodeUnauthorized, "a node's agent answers its cluster's servers only"))
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// fromServer says whether r came over TLS with the cluster's servers'
// certificate.
func fromServer(r *http.Request) bool {
	return r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && pki.IsServer(r.TLS.VerifiedChains[0][0])
}

// exec runs a command in an instance through its driver.
func (a *Agent) exec(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	a.mu.Lock()
	in, ok := a.instances[id]
	a.mu.Unlock()
	if !ok {
		return api.Errorf(api.CodeNotFound, "instance %s does not run on this node", id)
	}
	ex, ok := in.drv.(driver.Execer)
	if !ok {
		return api.Errorf(api.CodeInvalid, "the %s runtime cannot run commands inside an instance", in.drv.Name())
	}
	var req api.ExecRequest
	if err := httpapi.Decode(w, r, 1<<20, &req); err != nil {
		return err
	}
	if len(req.Command) == 0 {
		return api.Errorf(api.CodeInvalid, "command: a command to run is required")
	}
	var stdout, stderr cappedBuffer
	code, err := ex.Exec(r.Context(), id, req.Command, &stdout, &stderr)
	if err != nil {
		return api.Errorf(api.CodeConflict, "exec in %s: %v", id, err)
	}
	httpapi.WriteJSON(w, http.StatusOK, api.ExecResult{ExitCode: code, Stdout: stdout.String(), Stderr: stderr.String()})
	return nil
}

// cappedBuffer keeps the first api.MaxExecOutput bytes written to it.
type cappedBuffer struct{ bytes.Buffer }

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := api.MaxExecOutput - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// logs streams an instance's output as text; errors, before the first
// byte, are the API's JSON errors.
func (a *Agent) logs(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	a.mu.Lock()
	in, ok := a.instances[id]
	a.mu.Unlock()
	if !ok {
		return api.Errorf(api.CodeNotFound, "instance %s does not run on this node", id)
	}
	// An instance that never started has no output: say why instead.
	if why := in.startError(); why != "" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "instance %s has not started: %s\n", id, why)
		return nil
	}
	tail, _ := strconv.ParseInt(r.URL.Query().Get("tail"), 10, 64)
	follow := r.URL.Query().Get("follow") == "1" || r.URL.Query().Get("follow") == "true"
	rc, err := in.drv.Logs(r.Context(), id, tail, follow)
	if errors.Is(err, driver.ErrNotFound) {
		return api.Errorf(api.CodeNotFound, "no logs for %s", id)
	}
	if err != nil {
		return fmt.Errorf("agent: logs of %s: %w", id, err)
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil // the caller went away
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err != nil {
			return nil // the end of the output, or of the caller's wait
		}
	}
}
