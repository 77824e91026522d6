package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"

	"github.com/fanflow/fanflow/bench"
	"github.com/spf13/cobra"
)

func benchCmd() *cobra.Command {
	var (
		cfg                            bench.Config
		jsonFile, logLevel, cpuProfile string
		quiet                          bool
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Drive orders against fanflow (started here, or --target) and report throughput, latency and cost",
		Long: `bench hosts the mock job services, starts "fanflow serve" as a separate
process (or drives --target), runs --warmup orders, then --orders measured
ones, and prints a table and a JSON line: orders/s, create and end-to-end
latency percentiles, errors by kind, the orchestrator's CPU seconds per order
and peak RSS. The defaults are the standard workload; see bench/README.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(os.Stderr, "text", logLevel)
			if err != nil {
				return err
			}
			cfg.Logger = log
			if cfg.Warmup == 0 && cmd.Flags().Changed("warmup") {
				cfg.Warmup = -1 // bench.Config's "none"; its 0 is the default
			}
			if !quiet {
				cfg.Progress = os.Stderr
				cfg.ProgressInline = isTerminal(os.Stderr)
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return fmt.Errorf("cpu profile: %w", err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("cpu profile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep, runErr := bench.Run(ctx, cfg)
			if rep == nil {
				return runErr
			}
			out := cmd.OutOrStdout()
			if err := rep.WriteTable(out); err != nil {
				return fmt.Errorf("write table: %w", err)
			}
			line, err := json.Marshal(rep)
			if err != nil {
				return fmt.Errorf("encode report: %w", err)
			}
			line = append(line, '\n')
			if _, err := out.Write(line); err != nil {
				return fmt.Errorf("write report: %w", err)
			}
			if jsonFile != "" {
				if err := os.MkdirAll(filepath.Dir(jsonFile), 0o755); err != nil {
					return fmt.Errorf("write %s: %w", jsonFile, err)
				}
				if err := os.WriteFile(jsonFile, line, 0o644); err != nil {
					return fmt.Errorf("write report: %w", err)
				}
			}
			return runErr
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cfg.Target, "target", "", "base URL of a running orchestrator to drive (it must use --jobs-base-url http://<--mock-listen>); default: start one")
	fs.IntVar(&cfg.PID, "pid", 0, "with --target: its process id, to report its CPU and peak RSS from /proc")
	fs.StringVar(&cfg.FanflowBin, "fanflow-bin", "", "fanflow binary to start as the orchestrator (default: this executable)")
	fs.StringVar(&cfg.Store, "store", bench.DefaultStore, "store of the orchestrator started: redis, embedded or memory")
	fs.StringVar(&cfg.RedisURL, "redis-url", "", "loopback Redis for --store redis (default: start a redis-server of its own)")
	fs.StringVar(&cfg.RedisServer, "redis-server", bench.DefaultRedisServer, "redis-server binary to start")
	fs.IntVar(&cfg.Orders, "orders", bench.DefaultOrders, "measured orders")
	fs.IntVar(&cfg.Warmup, "warmup", bench.DefaultWarmup, "warm-up orders, run to completion before the measured ones (0 for none)")
	fs.IntVar(&cfg.Concurrency, "concurrency", bench.DefaultConcurrency, "orders in flight (closed loop); with --rate, the most in flight")
	fs.Float64Var(&cfg.Rate, "rate", 0, "start orders at this many per second (open loop) instead of a closed loop")
	fs.DurationVar(&cfg.CallbackDelay, "callback-delay", 0, "delay before the slowest job (30 s timeout) calls back; the others in proportion (0 = at once)")
	fs.StringVar(&cfg.MockListen, "mock-listen", "", "loopback address of the mock job services (default a free port; with --target "+bench.DefaultTargetMockListen+")")
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", bench.DefaultRequestTimeout, "timeout of each HTTP exchange of the bench")
	fs.DurationVar(&cfg.OrderTimeout, "order-timeout", 0, "how long an order may take to complete (default 1m + --callback-delay)")
	fs.DurationVar(&cfg.Timeout, "timeout", bench.DefaultTimeout, "bound on the whole run")
	fs.BoolVar(&cfg.Ceiling, "ceiling", false, "also measure the bare fasthttp 202 rate and report the efficiency against it")
	fs.DurationVar(&cfg.CeilingDuration, "ceiling-duration", bench.DefaultCeilingDuration, "how long --ceiling measures")
	fs.BoolVar(&cfg.KeepTemp, "keep-temp", false, "keep the temporary directory (orchestrator and Redis logs, embedded store)")
	fs.StringVar(&jsonFile, "json", "", "also write the JSON report to this file")
	fs.BoolVar(&quiet, "quiet", false, "no progress line on stderr")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the bench process (load generator and mocks) over the whole run to this file")
	fs.StringVar(&logLevel, "log-level", "warn", "level of the bench's own log on stderr: debug, info, warn or error")
	return cmd
}
