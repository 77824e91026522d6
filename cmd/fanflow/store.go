package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/fanflow/fanflow/persistence"
	"github.com/fanflow/fanflow/persistence/embedded"
	"github.com/fanflow/fanflow/persistence/memory"
	"github.com/fanflow/fanflow/persistence/redisstore"
	"github.com/spf13/pflag"
)

// storeConfig locates a snapshot store; serve and inspect share it.
type storeConfig struct {
	// Store is memory, embedded or redis (default embedded).
	Store string `yaml:"store"`
	// DataDir holds the embedded store's file (default ./data).
	DataDir string `yaml:"dataDir"`
	// RedisURL locates Redis for --store redis (default redis://127.0.0.1:6379/0).
	RedisURL string `yaml:"redisUrl"`
	// RedisPrefix prefixes every Redis key (default fanflow).
	RedisPrefix string `yaml:"redisPrefix"`
}

func defaultStoreConfig() storeConfig {
	return storeConfig{Store: "embedded", DataDir: "./data", RedisURL: redisstore.DefaultURL, RedisPrefix: redisstore.DefaultPrefix}
}

func (c *storeConfig) bindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.Store, "store", c.Store, "snapshot store: embedded, redis or memory (memory loses everything on exit)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory of the embedded store")
	fs.StringVar(&c.RedisURL, "redis-url", c.RedisURL, "Redis URL for --store redis")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", c.RedisPrefix, "prefix of every Redis key")
}

// open opens the store c names.
func (c storeConfig) open(log *slog.Logger) (persistence.Store, error) {
	switch c.Store {
	case "memory":
		log.Warn("memory store: every order is lost when fanflow stops")
		return memory.New(), nil
	case "embedded":
		s, err := embedded.Open(c.DataDir, embedded.Options{})
		if err != nil {
			return nil, fmt.Errorf("open embedded store in %s (is another fanflow using it?): %w", c.DataDir, err)
		}
		return s, nil
	case "redis":
		s, err := redisstore.New(redisstore.Options{URL: c.RedisURL, Prefix: c.RedisPrefix})
		if err != nil {
			return nil, fmt.Errorf("open redis store: %w", err)
		}
		return s, nil
	default:
		return nil, fmt.Errorf("store: must be embedded, redis or memory, not %q", c.Store)
	}
}

// expireLoop forgets finished orders past their retention every interval
// until ctx ends. Redis expires them by itself; the sweep also prunes its
// listing index.
func expireLoop(ctx context.Context, store persistence.Store, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			n, err := store.Expire(ctx, now)
			switch {
			case err != nil && ctx.Err() == nil:
				log.Warn("expiring finished orders failed", "err", err)
			case n > 0:
				log.Info("expired finished orders", "count", n)
			}
		}
	}
}
