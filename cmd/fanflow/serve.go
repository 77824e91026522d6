package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fanflow/fanflow/actors"
	"github.com/fanflow/fanflow/httpapi"
	"github.com/fanflow/fanflow/metrics"
	"github.com/fanflow/fanflow/mocks"
	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
	"github.com/fanflow/fanflow/token"
	"github.com/spf13/cobra"
	"github.com/valyala/fasthttp"
)

func serveCmd() *cobra.Command {
	cfg := defaultConfig()
	var file string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the orchestrator (with the mock job services unless --mocks=false)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.load(cmd.Flags(), file); err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			log, err := newLogger(os.Stderr, cfg.LogFormat, cfg.LogLevel)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, cfg, log)
		},
	}
	cmd.Flags().StringVar(&file, "config", "", "YAML configuration file (flags and FANFLOW_* variables override it)")
	cfg.bindFlags(cmd.Flags())
	return cmd
}

// serve runs fanflow until ctx ends, then shuts down gracefully.
func serve(ctx context.Context, cfg Config, log *slog.Logger) error {
	store, err := cfg.storeConfig.open(log)
	if err != nil {
		return err
	}
	defer store.Close()
	go expireLoop(ctx, store, time.Minute, log)
	if cfg.PprofListen != "" {
		if err := servePprof(ctx, cfg.PprofListen, log); err != nil {
			return err
		}
	}
	meter := metrics.New()
	commit := persistence.CommitOptions{OnBatch: meter.BatchWritten}
	if cfg.Store == "redis" {
		// A Redis write costs a round trip, not an fsync: batching what is
		// queued while the last batch was written beats waiting (measured in
		// persistence's benchmarks: up to 5x more snapshots per second).
		commit.MaxDelay = -1
	}
	committer := persistence.NewCommitter(store, commit)

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	self := "http://" + ln.Addr().String()
	base := cfg.JobsBaseURL
	if base == "" {
		base = self
	}
	caller, err := httpapi.NewCaller(httpapi.CallerConfig{BaseURL: base, Timeout: cfg.CalloutTimeout})
	if err != nil {
		return err
	}
	var tokens actors.Tokens
	if cfg.InsecureCallbacks {
		log.Warn("INSECURE: callback tokens are not checked; anyone who can reach fanflow can complete any job (--insecure-callbacks)")
	} else {
		secret, err := callbackSecret(ctx, cfg, store, log)
		if err != nil {
			return err
		}
		signer, err := token.New(secret)
		if err != nil {
			return err
		}
		tokens = signer
	}
	client, err := actors.New(actors.Config{
		Loader:          store,
		Saver:           committer,
		Claims:          store,
		Caller:          caller,
		Jobs:            cfg.Jobs,
		Policy:          order.Policy{MaxAttempts: cfg.CalloutAttempts, BackoffBase: cfg.CalloutBackoff, BackoffMax: cfg.CalloutBackoffMax},
		DefaultDeadline: cfg.Deadline,
		Retention:       cfg.Retention,
		CalloutTimeout:  cfg.CalloutTimeout,
		PassivateAfter:  cfg.PassivateAfter,
		Tokens:          tokens,
		Poster:          caller,
		NotifyURL:       cfg.NotifyURL,
		Logger:          log,
	}, meter)
	if err != nil {
		return err
	}

	var extra func(*fasthttp.RequestCtx) bool
	var mock *mocks.Server
	if cfg.Mocks {
		ts := cfg.TimeScale
		mock, err = mocks.New(mocks.Config{Jobs: cfg.Jobs, CallbackURL: callbackURL(self), TimeScale: &ts}, log)
		if err != nil {
			return err
		}
		extra = mock.Handle
	}
	var recovered atomic.Bool
	api := httpapi.New(client, httpapi.Config{
		BodyLimit:  cfg.BodyLimit,
		AdminToken: cfg.AdminToken,
		Metrics:    meter,
		Observer:   meter,
		Extra:      extra,
		Logger:     log,
		Ready: func(ctx context.Context) error {
			if !recovered.Load() {
				return errors.New("recovering running orders from the store")
			}
			return store.Ping(ctx)
		},
	})
	errc := make(chan error, 1)
	go func() { errc <- api.Serve(ln) }()
	log.Info("fanflow listening", "addr", ln.Addr().String(), "store", cfg.Store, "jobsBaseUrl", base, "mocks", cfg.Mocks, "timeScale", cfg.TimeScale)

	began := time.Now()
	recs, err := recoverOrders(ctx, store, client, log)
	if err != nil {
		log.Error("recovery incomplete: orders not recovered are activated by their first request", "err", err)
	}
	recovered.Store(true)
	known := 0
	for _, r := range recs {
		known += r.Known()
	}
	log.Info("recovery: every running order is in memory; loading their snapshots", "orders", known, "took", time.Since(began))
	go func() {
		var total actors.RecoveryStats
		for _, r := range recs {
			st, err := r.Wait(ctx)
			if err != nil {
				return // shutting down
			}
			total.Loaded, total.Gone, total.Failed = total.Loaded+st.Loaded, total.Gone+st.Gone, total.Failed+st.Failed
		}
		log.Info("recovery done", "orders", known, "loaded", total.Loaded, "gone", total.Gone, "failed", total.Failed, "took", time.Since(began))
	}()

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", cfg.ShutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	var errs []error
	if err := api.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
	}
	if mock != nil {
		if err := mock.Close(); err != nil {
			errs = append(errs, fmt.Errorf("mocks: %w", err))
		}
	}
	client.Close()
	if err := committer.Close(sctx); err != nil {
		errs = append(errs, fmt.Errorf("flush snapshots: %w", err))
	}
	log.Info("stopped")
	return errors.Join(errs...)
}

// recoverAttempts bounds how often recoverOrders walks the active index when
// the store fails; recoverRetry is the pause between walks.
const (
	recoverAttempts = 30
	recoverRetry    = 2 * time.Second
)

// recoverOrders makes every running order in the store known to the actors
// (see actors.Client.Recover) and returns the recoveries (one per walk),
// whose snapshots are still loading. A walk that fails is retried (the orders already entered
// are skipped), up to recoverAttempts times.
func recoverOrders(ctx context.Context, store persistence.Store, client *actors.Client, log *slog.Logger) ([]*actors.Recovery, error) {
	var recs []*actors.Recovery
	var err error
	for attempt := 1; attempt <= recoverAttempts; attempt++ {
		var rec *actors.Recovery
		rec, err = client.Recover(ctx, store, actors.RecoverOptions{})
		recs = append(recs, rec)
		if err == nil || ctx.Err() != nil {
			break
		}
		log.Warn("recovery: walking the running orders failed; retrying", "attempt", attempt, "retryIn", recoverRetry, "err", err)
		select {
		case <-time.After(recoverRetry):
		case <-ctx.Done():
		}
	}
	return recs, err
}

// secretKey is the store key under which a generated callback secret is kept.
const secretKey = "callback-secret"

// callbackSecret returns the configured secret or, when there is none, the
// one kept in the store, generating and storing it on first start, so that
// callback tokens stay valid across restarts.
func callbackSecret(ctx context.Context, cfg Config, store persistence.Store, log *slog.Logger) ([]byte, error) {
	if cfg.CallbackSecret != "" {
		return []byte(cfg.CallbackSecret), nil
	}
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	held, won, err := store.Claim(c, secretKey, token.RandomSecret(), 0)
	if err != nil {
		return nil, fmt.Errorf("callback secret: read or create it in the store: %w", err)
	}
	if won {
		log.Info("generated a callback secret and kept it in the store (set --callback-secret to choose one)")
	}
	return held, nil
}
