package daemon

import (
	"context"
	"errors"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/storageserver"
)

// RunStorage runs the storage service alone until ctx ends. It serves the
// development account when no other account is configured.
func RunStorage(ctx context.Context, cfg StorageConfig) error {
	if cfg.Data == "" {
		return errors.New("storage: --data is required")
	}
	return storageserver.Run(ctx, storageserver.Config{
		Data: cfg.Data, Host: cfg.Host,
		BlobPort: cfg.BlobPort, QueuePort: cfg.QueuePort, TablePort: cfg.TablePort,
		Accounts: storage.DevAccounts(), Logger: defaultLogger(cfg.Logger),
	})
}
