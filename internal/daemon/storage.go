package daemon

import (
	"context"
	"errors"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/storageserver"
)

// RunStorage runs the storage service alone until ctx ends. It serves the
// accounts cfg.Accounts lists, or the development account when it lists
// none.
func RunStorage(ctx context.Context, cfg StorageConfig) error {
	if cfg.Data == "" {
		return errors.New("storage: --data is required")
	}
	accounts := storage.DevAccounts()
	if cfg.Accounts != "" {
		var err error
		if accounts, err = storage.ParseAccounts(cfg.Accounts); err != nil {
			return err
		}
	}
	return storageserver.Run(ctx, storageserver.Config{
		Data: cfg.Data, Host: cfg.Host,
		BlobPort: cfg.BlobPort, QueuePort: cfg.QueuePort, TablePort: cfg.TablePort,
		Accounts: accounts, Logger: defaultLogger(cfg.Logger), MetricsListen: cfg.MetricsListen,
	})
}
