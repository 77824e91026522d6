package bench

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fanflow/fanflow/internal/testbin"

	"github.com/valyala/fasthttp"
)

// These tests run the bench against the real fanflow binary, with small
// numbers; they assert counts, never timings.

// testTimeout bounds each run.
const testTimeout = 2 * time.Minute

var binary string

func TestMain(m *testing.M) { testbin.Main(m, &binary) }

// small is a short workload against the test binary.
func small(t *testing.T) Config {
	return Config{
		FanflowBin:  binary,
		Store:       "memory",
		Orders:      30,
		Warmup:      10,
		Concurrency: 10,
		Timeout:     testTimeout,
		Logger:      slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

// testWriter sends log output to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// checkAllCompleted asserts that rep counts every order completed, none
// failed and no error.
func checkAllCompleted(t *testing.T, rep *Report, orders int) {
	t.Helper()
	if rep.Completed != orders || rep.Failed != 0 {
		t.Errorf("completed %d, failed %d; want %d and 0", rep.Completed, rep.Failed, orders)
	}
	if len(rep.Errors) != 0 || len(rep.WarmupErrors) != 0 {
		t.Errorf("errors %v, warm-up errors %v; want none", rep.Errors, rep.WarmupErrors)
	}
	for name, l := range map[string]Latency{"create": rep.CreateLatency, "end-to-end": rep.EndToEndLatency, "read": rep.ReadLatency} {
		if l.Count != orders {
			t.Errorf("%s latency has %d samples, want %d", name, l.Count, orders)
		}
	}
	// 1 create + 3 callouts + 3 callbacks + 1 read. The counters are read at
	// the edges of the phase while answers are still on their way (the last
	// ones of the phase, the last ones of the warm-up), so the figure may be
	// a little off either way; a counting error would be far off.
	if d := rep.ExchangesPerOrder - ExchangesPerOrder; d > 0.5 || d < -0.5 {
		t.Errorf("exchanges per order = %v, want %d ± 0.5", rep.ExchangesPerOrder, ExchangesPerOrder)
	}
	if rep.Mocks.CallbacksFailed != 0 || rep.Mocks.CallbacksRetried != 0 {
		t.Errorf("mocks = %+v, want no failed or retried callback", rep.Mocks)
	}
}

// checkGone asserts that process pid no longer exists.
func checkGone(t *testing.T, what string, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("%s (pid %d) still exists after Run: kill 0 = %v", what, pid, err)
	}
}

func TestRun_memoryStoreCompletesEveryOrder(t *testing.T) {
	t.Parallel()
	cfg := small(t)
	cfg.Ceiling = true
	cfg.CeilingDuration = 200 * time.Millisecond
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkAllCompleted(t, rep, 30)
	if rep.Orchestrator == nil || rep.Orchestrator.PID == 0 || rep.Orchestrator.Error != "" || rep.Orchestrator.PeakRSSBytes == 0 {
		t.Errorf("orchestrator figures = %+v, want its pid and peak RSS", rep.Orchestrator)
	} else {
		checkGone(t, "orchestrator", rep.Orchestrator.PID)
	}
	if rep.RedisServer != nil {
		t.Errorf("redis-server figures with the memory store: %+v", rep.RedisServer)
	}
	// (10 + 30) orders × 3 callouts, each answered and called back once.
	if m := rep.Mocks; m.CalloutsAccepted != 120 || m.CallbacksSent != 120 {
		t.Errorf("mocks = %+v, want 120 callouts and 120 callbacks", m)
	}
	if c := rep.Ceiling; c == nil || c.Requests == 0 || c.Errors != 0 || c.OrdersPerSecond <= 0 || c.Efficiency <= 0 {
		t.Errorf("ceiling = %+v, want requests, no errors, an implied rate and an efficiency", c)
	}
	var table strings.Builder
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"end-to-end", "30 completed, 0 failed", "errors            none", "efficiency"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

func TestRun_redisStoreStartsAndStopsItsOwnServer(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath(DefaultRedisServer)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server is required in CI: %v", err)
		}
		t.Skip("SKIPPING the Redis bench test: no redis-server on PATH (apt-get install redis-server)")
	}
	cfg := small(t)
	cfg.Store, cfg.RedisServer = "redis", bin
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkAllCompleted(t, rep, 30)
	if rep.RedisServer == nil || rep.RedisServer.PID == 0 {
		t.Fatalf("redis-server figures = %+v, want its pid", rep.RedisServer)
	}
	checkGone(t, "redis-server", rep.RedisServer.PID)
	checkGone(t, "orchestrator", rep.Orchestrator.PID)
}

func TestRun_targetWithPID(t *testing.T) {
	t.Parallel()
	mockAddr, err := freeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	args := func(listen string) []string {
		return orchestratorArgs(listen, "http://"+mockAddr, "memory", "", "", "")
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, base, err := startOrchestrator(ctx, binary, args, filepath.Join(t.TempDir(), "fanflow.log"), &fasthttp.Client{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.stop(stopGrace); err != nil {
			t.Error(err)
		}
	}()

	cfg := small(t)
	cfg.FanflowBin, cfg.Store = "", ""
	cfg.Target, cfg.PID, cfg.MockListen = base, c.pid(), mockAddr
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkAllCompleted(t, rep, 30)
	if rep.Workload.Target != base || rep.Orchestrator == nil || rep.Orchestrator.PID != c.pid() {
		t.Errorf("workload %+v, orchestrator %+v; want the target and its pid", rep.Workload, rep.Orchestrator)
	}
	if c.exited() {
		t.Error("Run stopped an orchestrator it did not start")
	}

	// Without --pid, the orchestrator's figures are n/a.
	cfg.PID = 0
	if rep, err = Run(ctx, cfg); err != nil {
		t.Fatalf("Run without PID: %v", err)
	}
	if rep.Orchestrator != nil {
		t.Errorf("orchestrator figures without PID = %+v, want n/a", rep.Orchestrator)
	}
	var table strings.Builder
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "n/a") {
		t.Errorf("table does not say n/a for the orchestrator:\n%s", table.String())
	}
}

func TestRun_orchestratorThatExitsIsReported(t *testing.T) {
	t.Parallel()
	falseBin, err := exec.LookPath("false")
	if err != nil {
		t.Skip("no false(1) on PATH")
	}
	cfg := small(t)
	cfg.FanflowBin = falseBin
	_, err = Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("Run with an orchestrator that exits at once = %v, want an error saying it exited", err)
	}
}

func TestConfig_validateNamesEveryBadField(t *testing.T) {
	t.Parallel()
	c := Config{
		Target: "http://10.1.2.3:8080", PID: -1, RedisURL: "redis://example.com:6379",
		MockListen: "0.0.0.0:8081", Orders: -5, Concurrency: -1, Rate: -1,
		CallbackDelay: -time.Second, RequestTimeout: -1, OrderTimeout: -1, Timeout: -1, CeilingDuration: -1,
	}
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad config")
	}
	for _, field := range []string{"Target", "PID", "RedisURL", "MockListen", "Orders", "Concurrency", "Rate",
		"CallbackDelay", "RequestTimeout", "OrderTimeout", "Timeout", "CeilingDuration"} {
		if !strings.Contains(err.Error(), field+":") {
			t.Errorf("error does not name %s:\n%v", field, err)
		}
	}
	var d Config
	d.setDefaults()
	if err := d.Validate(); err != nil {
		t.Errorf("defaults are invalid: %v", err)
	}
	if d.Orders != DefaultOrders || d.Warmup != DefaultWarmup || d.Concurrency != DefaultConcurrency || d.Store != DefaultStore {
		t.Errorf("defaults = %+v, want the standard workload", d)
	}
}

func TestFreeLoopbackAddr(t *testing.T) {
	t.Parallel()
	addr, err := freeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil || !isLoopback(host) {
		t.Errorf("freeLoopbackAddr = %q, %v; want a loopback host:port", addr, err)
	}
}
