package agent

import (
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/weftcloud/weft/internal/driver"
)

// routes is the agent's own API: the controller proxies `weft logs` here.
func (a *Agent) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /v1/instances/{id}/logs", a.logs)
	return mux
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
