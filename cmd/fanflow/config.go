package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/fanflow/fanflow/order"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// Config is everything `fanflow serve` can be told. It is read, in rising
// precedence, from its defaults, a YAML file (--config), FANFLOW_* environment
// variables (one per flag: --jobs-base-url is FANFLOW_JOBS_BASE_URL) and flags.
type Config struct {
	// Listen is the API's address (default 127.0.0.1:8080).
	Listen string `yaml:"listen"`
	// JobsBaseURL is prepended to each job endpoint (default: this server's
	// own address, where the built-in mocks answer).
	JobsBaseURL string `yaml:"jobsBaseUrl"`
	// Mocks serves the mock job services in-process (default true).
	Mocks bool `yaml:"mocks"`
	// TimeScale multiplies the mocks' delays (default 1; 0 = at once).
	TimeScale float64 `yaml:"timeScale"`
	// Deadline is the default order deadline (default 540000ms).
	Deadline    time.Duration `yaml:"deadline"`
	storeConfig `yaml:",inline"`
	// Retention is how long finished orders are kept (default 24h).
	Retention time.Duration `yaml:"retention"`
	// BodyLimit is the largest request body in bytes (default 1 MiB).
	BodyLimit int `yaml:"bodyLimit"`
	// CallbackSecret signs callback tokens (default: a random one).
	CallbackSecret string `yaml:"callbackSecret"`
	// InsecureCallbacks turns callback token checks off (default false).
	InsecureCallbacks bool `yaml:"insecureCallbacks"`
	// AdminToken protects list, cancel and retry with a bearer token (default none).
	AdminToken string `yaml:"adminToken"`
	// NotifyURL receives every finished order without a notifyUrl of its own (default none).
	NotifyURL string `yaml:"notifyUrl"`
	// CalloutTimeout bounds one callout attempt (default 5s).
	CalloutTimeout time.Duration `yaml:"calloutTimeout"`
	// CalloutAttempts is the number of callout attempts per job (default 5).
	CalloutAttempts int `yaml:"calloutAttempts"`
	// CalloutBackoff is the first retry's delay, doubled per retry (default 100ms).
	CalloutBackoff time.Duration `yaml:"calloutBackoff"`
	// CalloutBackoffMax caps the retry delay (default 10s).
	CalloutBackoffMax time.Duration `yaml:"calloutBackoffMax"`
	// PassivateAfter is how long a running order that only waits for
	// callbacks stays in memory without messages before it leaves; its
	// next callback or its deadline brings it back from the store
	// (default 1m; 0 or negative keeps waiting orders in memory).
	PassivateAfter time.Duration `yaml:"passivateAfter"`
	// ShutdownGrace bounds a graceful shutdown (default 10s).
	ShutdownGrace time.Duration `yaml:"shutdownGrace"`
	// PprofListen serves net/http/pprof on this address (default: off).
	PprofListen string `yaml:"pprofListen"`
	// LogLevel is debug, info, warn or error (default info).
	LogLevel string `yaml:"logLevel"`
	// LogFormat is json, text or auto: text on a terminal, else JSON (default auto).
	LogFormat string `yaml:"logFormat"`
	// Jobs are the job types (default: the seed's BatchJobA, B and C). YAML only.
	Jobs []order.JobSpec `yaml:"jobs"`
}

func defaultConfig() Config {
	return Config{
		Listen:            "127.0.0.1:8080",
		Mocks:             true,
		TimeScale:         1,
		Deadline:          540000 * time.Millisecond,
		storeConfig:       defaultStoreConfig(),
		Retention:         24 * time.Hour,
		BodyLimit:         1 << 20,
		CalloutTimeout:    5 * time.Second,
		CalloutAttempts:   5,
		CalloutBackoff:    100 * time.Millisecond,
		CalloutBackoffMax: 10 * time.Second,
		PassivateAfter:    time.Minute,
		ShutdownGrace:     10 * time.Second,
		LogLevel:          "info",
		LogFormat:         "auto",
		Jobs:              order.DefaultJobs(),
	}
}

// bindFlags registers serve's flags on fs, writing into c.
func (c *Config) bindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", c.Listen, "address to serve the API on")
	fs.StringVar(&c.JobsBaseURL, "jobs-base-url", c.JobsBaseURL, "base URL of the job services (default: this server, where --mocks answer)")
	fs.BoolVar(&c.Mocks, "mocks", c.Mocks, "serve the mock job services in-process")
	fs.Float64Var(&c.TimeScale, "time-scale", c.TimeScale, "mock delay multiplier: a job's timeout seconds × this (0 = at once)")
	fs.DurationVar(&c.Deadline, "deadline", c.Deadline, "default order deadline")
	c.storeConfig.bindFlags(fs)
	fs.DurationVar(&c.Retention, "retention", c.Retention, "how long finished orders are kept")
	fs.IntVar(&c.BodyLimit, "body-limit", c.BodyLimit, "largest request body, bytes")
	fs.StringVar(&c.CallbackSecret, "callback-secret", c.CallbackSecret, "secret that signs callback tokens (default: random per process)")
	fs.BoolVar(&c.InsecureCallbacks, "insecure-callbacks", c.InsecureCallbacks, "accept callbacks without a valid token")
	fs.StringVar(&c.AdminToken, "admin-token", c.AdminToken, "bearer token required by list, cancel and retry (default: none required)")
	fs.StringVar(&c.NotifyURL, "notify-url", c.NotifyURL, "completion webhook for orders without a notifyUrl of their own")
	fs.DurationVar(&c.CalloutTimeout, "callout-timeout", c.CalloutTimeout, "timeout of one callout attempt")
	fs.IntVar(&c.CalloutAttempts, "callout-attempts", c.CalloutAttempts, "callout attempts per job before it fails")
	fs.DurationVar(&c.CalloutBackoff, "callout-backoff", c.CalloutBackoff, "delay before the first callout retry (doubles per retry)")
	fs.DurationVar(&c.CalloutBackoffMax, "callout-backoff-max", c.CalloutBackoffMax, "largest delay between callout attempts")
	fs.DurationVar(&c.PassivateAfter, "passivate-after", c.PassivateAfter, "idle time after which a running order that only waits for callbacks leaves memory (0 = never)")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", c.ShutdownGrace, "how long a graceful shutdown may take")
	fs.StringVar(&c.PprofListen, "pprof-listen", c.PprofListen, "serve Go's pprof profiles on this loopback address (default: off)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "json, text or auto (text on a terminal)")
}

// Validate reports every problem, each naming its setting.
func (c *Config) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	switch c.Store {
	case "memory", "embedded", "redis":
	default:
		bad("store", "must be embedded, redis or memory, not %q", c.Store)
	}
	if c.TimeScale < 0 {
		bad("time-scale", "must not be negative")
	}
	if c.Deadline <= 0 {
		bad("deadline", "must be positive")
	}
	if c.BodyLimit < 1024 {
		bad("body-limit", "must be at least 1024 bytes")
	}
	if c.CalloutAttempts < 1 {
		bad("callout-attempts", "must be at least 1")
	}
	if c.CalloutTimeout <= 0 || c.CalloutBackoff <= 0 || c.CalloutBackoffMax <= 0 {
		bad("callout-timeout/callout-backoff/callout-backoff-max", "must be positive")
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		bad("log-level", "%v", err)
	}
	switch c.LogFormat {
	case "json", "text", "auto":
	default:
		bad("log-format", "must be json, text or auto, not %q", c.LogFormat)
	}
	if len(c.Jobs) == 0 {
		bad("jobs", "at least one job type is required")
	}
	seen := map[string]bool{}
	for i, j := range c.Jobs {
		if j.Type == "" || seen[j.Type] || !strings.HasPrefix(j.Endpoint, "/") || j.Timeout < 0 {
			bad(fmt.Sprintf("jobs[%d]", i), "needs a unique type, an endpoint starting with / and a timeout >= 0")
		}
		seen[j.Type] = true
	}
	return errors.Join(errs...)
}

// load fills c from, in rising precedence, its defaults (already in c), the
// YAML file, the environment and the flags set on the command line.
func (c *Config) load(fs *pflag.FlagSet, file string) error {
	// Flags were parsed into c already; remember those given, start again
	// from the defaults, and lay the sources over them in order.
	given := map[string]string{}
	fs.Visit(func(f *pflag.Flag) { given[f.Name] = f.Value.String() })
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		fresh := defaultConfig()
		*c = fresh
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(c); err != nil {
			return fmt.Errorf("config %s: %w", file, err)
		}
	}
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name == "config" {
			return
		}
		env := envName(f.Name)
		if v, ok := os.LookupEnv(env); ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", env, err))
			}
		}
		if v, ok := given[f.Name]; ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("--%s: %w", f.Name, err))
			}
		}
	})
	return errors.Join(errs...)
}

// envName is the environment variable that sets a flag: FANFLOW_ and the
// flag's name in upper snake case.
func envName(flag string) string {
	return "FANFLOW_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}
