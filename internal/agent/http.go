package agent

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/driver"
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
	mux.HandleFunc("GET /v1/instances/{id}/logs", a.logs)
	mux.HandleFunc("POST /v1/instances/{id}/exec", a.exec)
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
			writeAgentError(w, http.StatusUnauthorized, api.CodeUnauthorized, "a node's agent answers its cluster's servers only")
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

func writeAgentError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.ErrorBody{Error: api.Error{Code: code, Message: msg}})
}

// exec runs a command in an instance through its driver.
func (a *Agent) exec(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	a.mu.Lock()
	in, ok := a.instances[id]
	a.mu.Unlock()
	if !ok {
		writeAgentError(w, http.StatusNotFound, api.CodeNotFound, "instance "+id+" does not run on this node")
		return
	}
	ex, ok := in.drv.(driver.Execer)
	if !ok {
		writeAgentError(w, http.StatusBadRequest, api.CodeInvalid, "the "+in.drv.Name()+" runtime cannot run commands inside an instance")
		return
	}
	var req api.ExecRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil || len(req.Command) == 0 {
		writeAgentError(w, http.StatusBadRequest, api.CodeInvalid, "command: a command to run is required")
		return
	}
	var stdout, stderr cappedBuffer
	code, err := ex.Exec(r.Context(), id, req.Command, &stdout, &stderr)
	if err != nil {
		writeAgentError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("exec in %s: %v", id, err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(api.ExecResult{ExitCode: code, Stdout: stdout.String(), Stderr: stderr.String()})
}

// cappedBuffer keeps the first api.MaxExecOutput bytes written to it.
type cappedBuffer struct{ bytes.Buffer }

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := api.MaxExecOutput - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (a *Agent) logs(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	a.mu.Lock()
	in, ok := a.instances[id]
	a.mu.Unlock()
	if !ok {
		http.Error(w, `{"error":{"code":"not_found","message":"instance `+id+` does not run on this node"}}`, http.StatusNotFound)
		return
	}
	// An instance that never started has no output: say why instead.
	if why := in.startError(); why != "" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "instance %s has not started: %s\n", id, why)
		return
	}
	tail, _ := strconv.ParseInt(r.URL.Query().Get("tail"), 10, 64)
	follow := r.URL.Query().Get("follow") == "1" || r.URL.Query().Get("follow") == "true"
	rc, err := in.drv.Logs(r.Context(), id, tail, follow)
	if errors.Is(err, driver.ErrNotFound) {
		http.Error(w, `{"error":{"code":"not_found","message":"no logs for `+id+`"}}`, http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err == io.EOF || err != nil {
			return
		}
	}
}
