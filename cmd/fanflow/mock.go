package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fanflow/fanflow/mocks"
	"github.com/spf13/cobra"
	"github.com/valyala/fasthttp"
)

func mockCmd() *cobra.Command {
	var (
		listen, fanflowURL, logLevel, logFormat string
		timeScale                               float64
		cfg                                     mocks.Config
	)
	cmd := &cobra.Command{
		Use:   "mock",
		Short: "Serve the mock job services (BatchJobA, B, C) on their own",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(os.Stderr, logFormat, logLevel)
			if err != nil {
				return err
			}
			cfg.CallbackURL = callbackURL(fanflowURL)
			cfg.TimeScale = &timeScale
			m, err := mocks.New(cfg, log)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen %s: %w", listen, err)
			}
			srv := &fasthttp.Server{Handler: m.Handler(), Name: "fanflow-mock", ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(ln) }()
			log.Info("mock job services listening", "addr", ln.Addr().String(), "callbackUrl", cfg.CallbackURL, "timeScale", timeScale)
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return errors.Join(m.Close(), srv.ShutdownWithContext(sctx))
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&listen, "listen", "127.0.0.1:8081", "address to serve the mock job services on")
	fs.StringVar(&fanflowURL, "fanflow-url", "http://127.0.0.1:8080", "base URL of fanflow, which receives the callbacks")
	fs.Float64Var(&timeScale, "time-scale", 1, "delay multiplier: a job's timeout seconds × this (0 = at once)")
	fs.DurationVar(&cfg.Jitter, "jitter", 0, "random extra delay per callback, up to this")
	fs.Float64Var(&cfg.CalloutFailRate, "callout-fail-rate", 0, "fraction of callouts answered 500")
	fs.Float64Var(&cfg.DuplicateRate, "duplicate-rate", 0, "fraction of jobs that call back twice")
	fs.Float64Var(&cfg.DropRate, "drop-rate", 0, "fraction of jobs that never call back")
	fs.Float64Var(&cfg.FailedRate, "failed-rate", 0, "fraction of jobs that call back with status failed")
	fs.DurationVar(&cfg.CallbackRetryFor, "callback-retry-for", 10*time.Minute, "how long a failing callback is retried")
	fs.Int64Var(&cfg.Seed, "seed", 0, "random seed for fault injection (0 = random)")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&logFormat, "log-format", "auto", "json, text or auto")
	return cmd
}
