package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/fanflow/fanflow/persistence"
	"github.com/fanflow/fanflow/persistence/memory"
)

// openStore opens the snapshot store cfg names.
func openStore(_ context.Context, cfg Config, log *slog.Logger) (persistence.Store, error) {
	switch cfg.Store {
	case "memory":
		log.Warn("memory store: every order is lost when fanflow stops")
		return memory.New(), nil
	default:
		return nil, fmt.Errorf("store %q is not available in this build", cfg.Store)
	}
}
