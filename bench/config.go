package bench

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"time"
)

// Defaults of Config, which make up the standard workload: 2,000 measured
// orders after 300 warm-up orders, 200 in flight (closed loop), job
// services calling back at once, snapshots in Redis.
const (
	DefaultStore           = "redis"
	DefaultOrders          = 2000
	DefaultWarmup          = 300
	DefaultConcurrency     = 200
	DefaultRequestTimeout  = 10 * time.Second
	DefaultOrderTimeout    = time.Minute // plus CallbackDelay
	DefaultTimeout         = 5 * time.Minute
	DefaultCeilingDuration = 3 * time.Second
	DefaultRedisServer     = "redis-server"
	// DefaultTargetMockListen is where the mock job services listen when
	// Config.Target is set: `fanflow mock`'s default address.
	DefaultTargetMockListen = "127.0.0.1:8081"
	// maxCeilingRequests bounds the ceiling measurement whatever its duration.
	maxCeilingRequests = 5_000_000
)

// ExchangesPerOrder is the number of HTTP exchanges of one order of the
// standard workload: 1 create, 3 callouts, 3 callbacks, 1 status read. The
// ceiling's implied orders/s is its requests/s divided by this.
const ExchangesPerOrder = 8

// Config says what Run drives and how. Each field says its default, applied
// by Run to fields left at their zero value. Run copies the Config.
type Config struct {
	// Target is the base URL of an orchestrator that is already running,
	// e.g. http://127.0.0.1:8080; it must be started with
	// --jobs-base-url pointing at MockListen. Empty (default): Run starts
	// `FanflowBin serve` itself, as a separate process.
	Target string
	// PID is the process id of Target, to read its CPU time and peak RSS
	// from /proc. 0 (default): with Target, those figures are n/a; without
	// Target, the PID of the orchestrator Run starts is used.
	PID int
	// FanflowBin is the fanflow binary started as the orchestrator
	// (default: the running executable).
	FanflowBin string
	// Store is the orchestrator's store: redis, embedded or memory
	// (default redis). Ignored with Target.
	Store string
	// RedisURL is a Redis server to use for Store redis. Empty (default):
	// Run starts its own RedisServer on a free loopback port, with
	// persistence off, in a temporary directory. With a RedisURL, keys get
	// a prefix unique to the run.
	RedisURL string
	// RedisServer is the redis-server binary (default redis-server, from
	// PATH).
	RedisServer string

	// Orders is the number of measured orders (default 2000).
	Orders int
	// Warmup is the number of orders run, to completion, before the
	// measured ones; they are not measured (default 300; -1 for none).
	Warmup int
	// Concurrency is the number of orders in flight: a closed loop, each of
	// Concurrency workers starts its next order when its last one is done
	// (default 200). With Rate, it caps the orders in flight.
	Concurrency int
	// Rate, when positive, makes the loop open: orders are started at this
	// many per second (while fewer than Concurrency are in flight), and
	// latencies count from each order's scheduled start, so a stalled
	// orchestrator is not hidden (no coordinated omission). Default 0:
	// closed loop.
	Rate float64
	// CallbackDelay is how long the slowest job service (the 30-second
	// BatchJobA) waits before calling back; the others wait in proportion
	// to their timeouts (20 s and 10 s → 2/3 and 1/3 of it). Default 0:
	// every job service calls back at once.
	CallbackDelay time.Duration
	// MockListen is the loopback address of the mock job services
	// (default 127.0.0.1:0, a free port; with Target 127.0.0.1:8081).
	MockListen string

	// RequestTimeout bounds each HTTP exchange of the bench (default 10s).
	RequestTimeout time.Duration
	// OrderTimeout bounds how long an order may take to complete after its
	// create was answered (default 1m plus CallbackDelay).
	OrderTimeout time.Duration
	// Timeout bounds the whole run, orchestrator start to ceiling
	// (default 5m).
	Timeout time.Duration

	// Ceiling, when set, also measures in the same run how many POSTs per
	// second a bare fasthttp server answering 202 takes at Concurrency,
	// for CeilingDuration, and reports the workload's efficiency against it.
	Ceiling bool
	// CeilingDuration is how long the ceiling is measured (default 3s).
	CeilingDuration time.Duration

	// KeepTemp keeps the temporary directory (orchestrator and Redis logs,
	// embedded store) and logs its path; default false: it is removed.
	KeepTemp bool
	// Progress, if set, receives a progress line about once a second.
	Progress io.Writer
	// ProgressInline rewrites the progress line in place with \r (for a
	// terminal) instead of writing one line per update.
	ProgressInline bool
	// Logger receives the bench's and the mocks' logs (default: discarded).
	Logger *slog.Logger
}

// fixedJobsTimeout is the largest job timeout (seconds) of the default job
// set; CallbackDelay is the delay of a job with this timeout.
const fixedJobsTimeout = 30

func (c *Config) setDefaults() {
	if c.Store == "" {
		c.Store = DefaultStore
	}
	if c.RedisServer == "" {
		c.RedisServer = DefaultRedisServer
	}
	if c.Orders == 0 {
		c.Orders = DefaultOrders
	}
	switch {
	case c.Warmup == 0:
		c.Warmup = DefaultWarmup
	case c.Warmup < 0:
		c.Warmup = 0
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MockListen == "" {
		c.MockListen = "127.0.0.1:0"
		if c.Target != "" {
			c.MockListen = DefaultTargetMockListen
		}
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.OrderTimeout == 0 {
		c.OrderTimeout = DefaultOrderTimeout + c.CallbackDelay
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.CeilingDuration == 0 {
		c.CeilingDuration = DefaultCeilingDuration
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem with c, each naming its field, joined
// with errors.Join. Run calls it after applying the defaults.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.Target != "" {
		u, err := url.Parse(c.Target)
		switch {
		case err != nil:
			bad("Target", "%v", err)
		case u.Scheme != "http" || u.Host == "" || (u.Path != "" && u.Path != "/"):
			bad("Target", "%q must be an http base URL such as http://127.0.0.1:8080", c.Target)
		case !isLoopback(u.Hostname()):
			bad("Target", "%q is not a loopback address; the bench only drives this machine", c.Target)
		}
	} else {
		switch c.Store {
		case "redis", "embedded", "memory":
		default:
			bad("Store", "must be redis, embedded or memory, not %q", c.Store)
		}
	}
	if c.PID < 0 {
		bad("PID", "%d must not be negative", c.PID)
	}
	if c.RedisURL != "" {
		if u, err := url.Parse(c.RedisURL); err != nil || u.Scheme != "redis" || !isLoopback(u.Hostname()) {
			bad("RedisURL", "%q must be a redis:// URL of a loopback address", c.RedisURL)
		}
	}
	if host, _, err := net.SplitHostPort(c.MockListen); err != nil || !isLoopback(host) {
		bad("MockListen", "%q must be a loopback host:port", c.MockListen)
	}
	if c.Orders < 1 {
		bad("Orders", "%d must be at least 1", c.Orders)
	}
	if c.Concurrency < 1 {
		bad("Concurrency", "%d must be at least 1", c.Concurrency)
	}
	if c.Rate < 0 {
		bad("Rate", "%v must not be negative", c.Rate)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
		zero bool // 0 allowed
	}{
		{"CallbackDelay", c.CallbackDelay, true},
		{"RequestTimeout", c.RequestTimeout, false},
		{"OrderTimeout", c.OrderTimeout, false},
		{"Timeout", c.Timeout, false},
		{"CeilingDuration", c.CeilingDuration, false},
	} {
		if d.v < 0 || (!d.zero && d.v == 0) {
			bad(d.name, "%v must be positive", d.v)
		}
	}
	return errors.Join(errs...)
}

// isLoopback reports whether host (a name or an IP) is this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// timeScale is the mocks' TimeScale that makes a fixedJobsTimeout-second
// job call back after c.CallbackDelay.
func (c *Config) timeScale() float64 {
	return c.CallbackDelay.Seconds() / fixedJobsTimeout
}
