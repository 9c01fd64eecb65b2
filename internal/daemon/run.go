package daemon

import (
	"context"
	"errors"
)

// RunServer runs a controller until ctx ends.
func RunServer(ctx context.Context, cfg ServerConfig) error {
	return errors.New("daemon: server not implemented yet")
}

// RunAgent runs a node agent until ctx ends.
func RunAgent(ctx context.Context, cfg AgentConfig) error {
	return errors.New("daemon: agent not implemented yet")
}

// RunStorage runs the storage service alone until ctx ends.
func RunStorage(ctx context.Context, cfg StorageConfig) error {
	return errors.New("daemon: storage not implemented yet")
}

// RunDev runs the whole cloud in one process until ctx ends.
func RunDev(ctx context.Context, cfg DevConfig) error {
	return errors.New("daemon: dev not implemented yet")
}
