package replica

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/weftcloud/weft/internal/storage"
)

// Source names the primary in its requests to replicas: a replica takes
// ops only from the primary of the newest epoch it knows, and copies
// files from API.
type Source struct {
	Name  string
	Epoch uint64
	API   string // the primary's API base URL
}

const (
	// batchBytes bounds the ops of one request.
	batchBytes = 4 << 20
	// liveLimit is how much a live replica may lag before writers wait.
	liveLimit = 64 << 20
	// holdLimit is how much may wait for a replica still copying; past
	// it the copy starts over later.
	holdLimit = 512 << 20
)

// Shipper is the primary's side: it sends every op to each replica in
// order, and holds a frame's writes until every in-sync replica has it.
type Shipper struct {
	dir    string
	src    Source
	client *http.Client
	drop   func(ctx context.Context, name string) error
	log    *slog.Logger

	mu     sync.Mutex
	cond   *sync.Cond
	seq    uint64
	peers  map[string]*peer
	failed error
	dead   chan struct{} // closed when failed is set
}

type peer struct {
	name, api string
	// holding: the replica is being copied; its ops queue up unsent, and
	// frames only of the databases whose cut passed (frames).
	holding bool
	frames  map[string]bool
	inSync  bool // writes wait for it
	queue   []queued
	bytes   int
	acked   uint64
	wake    chan struct{}
	stop    chan struct{}
}

// signal wakes p's sender if it waits.
func (p *peer) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

type queued struct {
	seq uint64
	op  Op
}

// ShipperConfig configures NewShipper.
type ShipperConfig struct {
	Dir    string // the storage directory
	Source Source
	Client *http.Client // to the replicas' APIs (mutual TLS between servers)
	// Drop removes a replica from the in-sync set through the replicated
	// state. An in-sync replica that fails is dropped before any write
	// goes on without it; when Drop fails the shipper fails.
	Drop   func(ctx context.Context, name string) error
	Logger *slog.Logger
}

// NewShipper returns a shipper with no replicas yet.
func NewShipper(cfg ShipperConfig) *Shipper {
	s := &Shipper{dir: cfg.Dir, src: cfg.Source, client: cfg.Client, drop: cfg.Drop, log: cfg.Logger,
		peers: map[string]*peer{}, dead: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// For returns what the service keeping its files and database under
// dir/db hands its changes to.
func (s *Shipper) For(db string) storage.Replication { return service{s: s, db: db} }

// Dead is closed once the shipper failed: a replica could be neither
// reached nor dropped, so no write may be answered any more.
func (s *Shipper) Dead() <-chan struct{} { return s.dead }

// Replicas returns the replicas ops go to, and which of them are in sync.
func (s *Shipper) Replicas() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]bool{}
	for name, p := range s.peers {
		out[name] = p.inSync
	}
	return out
}

// Lag is how far a replica is behind the primary.
type Lag struct {
	InSync bool
	Ops    uint64 // changes logged here that it has not acknowledged
	Bytes  int    // of those still queued for it
}

// Lag returns each replica's lag (for metrics).
func (s *Shipper) Lag() map[string]Lag {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]Lag, len(s.peers))
	for name, p := range s.peers {
		out[name] = Lag{InSync: p.inSync, Ops: s.seq - min(p.acked, s.seq), Bytes: p.bytes}
	}
	return out
}

// Close stops sending; writes waiting for replicas fail.
func (s *Shipper) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.peers {
		s.removeLocked(p)
	}
	s.failLocked(errors.New("replica: shipper closed"))
}

type service struct {
	s  *Shipper
	db string
}

func (v service) Ship(frame []byte) func() error {
	seq := v.s.enqueue(Op{kind: opFrame, db: v.db, data: frame})
	return func() error { return v.s.waitInSync(seq) }
}
func (v service) Write(path string, off int64, data []byte) {
	v.s.enqueue(Op{kind: opWrite, path: v.db + "/" + path, off: off, data: data})
}
func (v service) Punch(path string, off, n int64) {
	v.s.enqueue(Op{kind: opPunch, path: v.db + "/" + path, off: off, n: n})
}
func (v service) Truncate(path string, size int64) {
	v.s.enqueue(Op{kind: opTruncate, path: v.db + "/" + path, n: size})
}
func (v service) Copy(path string) {
	path = v.db + "/" + path
	v.s.enqueue(Op{kind: opCopy, path: path, n: fileSize(filepath.Join(v.s.dir, filepath.FromSlash(path)))})
}
func (v service) Remove(path string) { v.s.enqueue(Op{kind: opRemove, path: v.db + "/" + path}) }

// enqueue gives op the next sequence number and queues it for every
// replica, first waiting while a live one lags too far.
func (s *Shipper) enqueue(op Op) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.failed == nil && s.lagging() {
		s.cond.Wait()
	}
	s.seq++
	if len(s.peers) == 0 {
		return s.seq // a primary alone copies nothing
	}
	// A copy: the caller may reuse its buffer once this returns.
	op.data = bytes.Clone(op.data)
	for _, p := range s.peers {
		if p.holding && op.kind == opFrame && !p.frames[op.db] {
			continue // in the dump of its database
		}
		p.queue = append(p.queue, queued{seq: s.seq, op: op})
		p.bytes += op.size()
		if p.holding && p.bytes > holdLimit {
			s.log.Warn("replica fell too far behind while being copied; copying again later", "replica", p.name)
			s.removeLocked(p)
			continue
		}
		p.signal()
	}
	return s.seq
}

func (s *Shipper) lagging() bool {
	for _, p := range s.peers {
		if !p.holding && p.bytes > liveLimit {
			return true
		}
	}
	return false
}

// waitInSync waits until every in-sync replica has the op numbered seq.
func (s *Shipper) waitInSync(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.failed != nil {
			return s.failed
		}
		waiting := false
		for _, p := range s.peers {
			if p.inSync && p.acked < seq {
				waiting = true
				break
			}
		}
		if !waiting {
			return nil
		}
		s.cond.Wait()
	}
}

// removeLocked stops sending to p; writes stop waiting for it.
func (s *Shipper) removeLocked(p *peer) {
	if s.peers[p.name] != p {
		return
	}
	delete(s.peers, p.name)
	close(p.stop)
	s.cond.Broadcast()
}

func (s *Shipper) failLocked(err error) {
	if s.failed != nil {
		return
	}
	s.failed = err
	close(s.dead)
	s.cond.Broadcast()
}

// sendLoop sends p's queue in order, a batch at a time, while p is live.
func (s *Shipper) sendLoop(p *peer) {
	for {
		s.mu.Lock()
		var batch []queued
		size := 0
		for _, q := range p.queue {
			if len(batch) > 0 && size+q.op.size() > batchBytes {
				break
			}
			batch = append(batch, q)
			size += q.op.size()
		}
		s.mu.Unlock()
		if len(batch) == 0 {
			select {
			case <-p.wake:
				continue
			case <-p.stop:
				return
			}
		}
		ops := make([]Op, len(batch))
		for i, q := range batch {
			ops[i] = q.op
		}
		if err := s.post(context.Background(), p, "ops", ops, nil); err != nil {
			s.lost(p, err)
			return
		}
		s.mu.Lock()
		p.queue = p.queue[len(batch):]
		p.bytes -= size
		p.acked = batch[len(batch)-1].seq
		s.cond.Broadcast()
		s.mu.Unlock()
	}
}

// lost handles a replica that failed a request: one in the in-sync set
// leaves it through the replicated state before any write goes on
// without it.
func (s *Shipper) lost(p *peer, err error) {
	s.mu.Lock()
	inSync := s.peers[p.name] == p && p.inSync
	s.mu.Unlock()
	if inSync {
		s.log.Warn("replica failed; dropping it from the in-sync set", "replica", p.name, "err", err)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		derr := s.drop(ctx, p.name)
		cancel()
		if derr != nil {
			s.log.Error("replica failed and could not be dropped: storage stops taking writes", "replica", p.name, "err", derr)
			s.mu.Lock()
			s.failLocked(fmt.Errorf("replica %s failed (%v) and could not leave the in-sync set: %w", p.name, err, derr))
			s.mu.Unlock()
			return
		}
	} else {
		s.log.Info("replica failed while catching up", "replica", p.name, "err", err)
	}
	s.mu.Lock()
	s.removeLocked(p)
	s.mu.Unlock()
}

// post sends ops (or, with no ops, an empty body) to one of the
// replica's routes and waits until it has applied them durably; reply,
// when not nil, takes the JSON answer.
func (s *Shipper) post(ctx context.Context, p *peer, route string, ops []Op, reply any) error {
	var body []byte
	timeout := 10 * time.Second
	for _, o := range ops {
		body = appendOp(body, o)
		timeout += 50 * time.Millisecond
		if o.kind == opCopy {
			// The replica copies the files it names.
			timeout += copyTime(o.n)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout+time.Duration(len(body)>>20)*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.api+routePrefix+route, bytes.NewReader(body))
	if err != nil {
		return err
	}
	s.src.set(req.Header)
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("replica %s: %s: %s", p.name, resp.Status, bytes.TrimSpace(msg))
	}
	if reply != nil {
		if err := json.NewDecoder(resp.Body).Decode(reply); err != nil {
			return fmt.Errorf("replica %s: %s: %w", p.name, route, err)
		}
	}
	return nil
}

const (
	routePrefix   = "/v1/storage/replica/"
	headerEpoch   = "X-Weft-Epoch"
	headerPrimary = "X-Weft-Primary"
	headerSource  = "X-Weft-Source"
)

func (src Source) set(h http.Header) {
	h.Set(headerEpoch, strconv.FormatUint(src.Epoch, 10))
	h.Set(headerPrimary, src.Name)
	h.Set(headerSource, src.API)
}

func sourceOf(h http.Header) (Source, error) {
	epoch, err := strconv.ParseUint(h.Get(headerEpoch), 10, 64)
	if err != nil || h.Get(headerPrimary) == "" || h.Get(headerSource) == "" {
		return Source{}, errors.New("replica: a request without its primary's epoch, name and address")
	}
	return Source{Name: h.Get(headerPrimary), Epoch: epoch, API: h.Get(headerSource)}, nil
}
