package storage

import (
	"log/slog"
	"time"

	"github.com/weftcloud/weft/internal/storage/boltlog"
	"github.com/weftcloud/weft/internal/vfs"
)

// Options are what a service opens with (blob, queue and table OpenWith).
type Options struct {
	Logger      *slog.Logger
	Replication Replication // nil: none
	// FS holds the service's log and data files (nil: the operating
	// system's); tests cut its power with vfs/crashfs.
	FS vfs.FS
	// Synced is boltlog.Options.Synced for the service's database.
	Synced func(writes int, took time.Duration)
}

// Log returns the logger, a silent one when none was given.
func (o Options) Log() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// Database returns the options of the service's database.
func (o Options) Database() boltlog.Options {
	opt := boltlog.Options{Logger: o.Log(), FS: o.FS, Synced: o.Synced}
	if o.Replication != nil {
		opt.Ship = o.Replication.Ship
	}
	return opt
}

// Replication takes a service's changes to the servers that replicate
// this one's storage (internal/storage/replica). A service given none
// keeps its data to itself.
type Replication interface {
	// Ship hands over a frame of the service's database as it is logged
	// (boltlog.Options.Ship) and returns a wait that returns once every
	// replica that must have it does.
	Ship(frame []byte) (wait func() error)
	// The file changes below return at once: they reach the replicas
	// before any frame shipped after them. Paths are the files' paths
	// relative to the service's directory. A service calls them for one
	// file in the order it changed the file.
	Write(path string, off int64, data []byte) // bytes written at off
	Punch(path string, off, n int64)           // a range zeroed
	Truncate(path string, size int64)          // the file made or resized
	Copy(path string)                          // a new file, whole
	Remove(path string)                        // the file removed
}
