package mocks

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/fanflow/fanflow/order"
)

// Defaults applied by New to fields left at their zero value.
const (
	// DefaultTimeScale turns a job's "timeout" seconds into its delay one to one.
	DefaultTimeScale = 1.0
	// DefaultCallbackRetryFor bounds how long a failing callback is retried.
	DefaultCallbackRetryFor = 10 * time.Minute
)

// Config configures a mock job service. The zero value is not usable:
// CallbackURL is required. New copies the Config; changing it afterwards has
// no effect.
type Config struct {
	// Jobs are the job types whose endpoints are served; only Endpoint is
	// used (the delay comes from each request's "timeout").
	// Default: order.DefaultJobs() (/v1/batchJobA, /v1/batchJobB, /v1/batchJobC).
	Jobs []order.JobSpec

	// CallbackURL is the full URL callbacks are POSTed to, e.g.
	// http://127.0.0.1:8080/v1/parallelCallbacks/results. Required.
	CallbackURL string

	// TimeScale multiplies the request's "timeout" (seconds) to give the
	// delay before calling back: 0 calls back immediately, 0.01 turns 30 s
	// into 300 ms. Default (nil): 1. Negative, NaN or infinite is invalid.
	// It is a pointer so that 0 can be told apart from "not set"; in Go 1.26
	// write TimeScale: new(0.0).
	TimeScale *float64

	// Jitter adds a random extra delay in [0, Jitter) to each callback.
	// Default: 0 (none).
	Jitter time.Duration

	// CalloutFailRate is the fraction of callouts, in [0, 1], answered 500
	// instead of 202; no callback follows. Default: 0.
	CalloutFailRate float64
	// DuplicateRate is the fraction of accepted jobs, in [0, 1], whose
	// callback is sent twice (two independent deliveries). Default: 0.
	DuplicateRate float64
	// DropRate is the fraction of accepted jobs, in [0, 1], that never call
	// back. Default: 0.
	DropRate float64
	// FailedRate is the fraction of accepted jobs, in [0, 1], whose callback
	// carries "status":"failed" and an "error" object. Default: 0.
	FailedRate float64

	// CallbackRetryFor is how long, from the first attempt, a callback that
	// fails with a network error, 408, 429 or 5xx keeps being retried (with
	// exponential backoff and jitter). Any other 4xx is final. Default: 10m.
	CallbackRetryFor time.Duration

	// Seed seeds the random source used for fault injection, jitter and
	// backoff, so tests can be deterministic. Default: 0, a random seed.
	Seed int64

	// CallbackDial, if set, opens the connections callbacks are sent over
	// (tests pass an in-memory listener's Dial). Default: TCP.
	CallbackDial fasthttp.DialFunc

	// OnCallbackAnswered, if set, is called after every callback attempt
	// that got an HTTP answer, whatever its status (a 503 that will be
	// retried is reported, and so is the retry's answer), with the order
	// and job ids of the delivery, the answer's status and its body. It is
	// not called for attempts that failed in transport (no answer). It runs
	// on the goroutine that sent the callback, before the next attempt is
	// armed, so it must be quick and safe for concurrent use. body is valid
	// only during the call: copy what you keep. A load generator uses it to
	// see an order complete (fanflow answers "orderStatus":"completed").
	// Default: nil, and then nothing is called or copied.
	OnCallbackAnswered func(orderID, jobID string, status int, body []byte)
}

// setDefaults fills zero fields with their documented defaults.
func (c *Config) setDefaults() {
	if len(c.Jobs) == 0 {
		c.Jobs = order.DefaultJobs()
	}
	if c.TimeScale == nil {
		c.TimeScale = new(DefaultTimeScale)
	}
	if c.CallbackRetryFor == 0 {
		c.CallbackRetryFor = DefaultCallbackRetryFor
	}
}

// Validate reports every problem with c, each naming its field, joined with
// errors.Join; nil means c is usable. Call it after defaults are applied
// (New does both).
func (c *Config) Validate() error {
	var errs []error
	seen := make(map[string]int, len(c.Jobs))
	for i, j := range c.Jobs {
		field := fmt.Sprintf("Jobs[%d].Endpoint", i)
		switch {
		case !strings.HasPrefix(j.Endpoint, "/"):
			errs = append(errs, fieldErrorf(field, "%q must be a path starting with /", j.Endpoint))
		default:
			if k, dup := seen[j.Endpoint]; dup {
				errs = append(errs, fieldErrorf(field, "%q is already served by Jobs[%d]", j.Endpoint, k))
			} else {
				seen[j.Endpoint] = i
			}
		}
	}
	if c.CallbackURL == "" {
		errs = append(errs, fieldErrorf("CallbackURL", "required"))
	} else if u, err := url.Parse(c.CallbackURL); err != nil {
		errs = append(errs, fieldErrorf("CallbackURL", "%w", err))
	} else if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fieldErrorf("CallbackURL", "%q must be an absolute http or https URL", c.CallbackURL))
	}
	if c.TimeScale != nil {
		if ts := *c.TimeScale; ts < 0 || math.IsNaN(ts) || math.IsInf(ts, 0) {
			errs = append(errs, fieldErrorf("TimeScale", "%v must be a finite number >= 0", ts))
		}
	}
	if c.Jitter < 0 {
		errs = append(errs, fieldErrorf("Jitter", "%v must not be negative", c.Jitter))
	}
	for _, r := range []struct {
		name string
		v    float64
	}{
		{"CalloutFailRate", c.CalloutFailRate},
		{"DuplicateRate", c.DuplicateRate},
		{"DropRate", c.DropRate},
		{"FailedRate", c.FailedRate},
	} {
		if !(r.v >= 0 && r.v <= 1) { // also rejects NaN
			errs = append(errs, fieldErrorf(r.name, "%v must be in [0, 1]", r.v))
		}
	}
	if c.CallbackRetryFor < 0 {
		errs = append(errs, fieldErrorf("CallbackRetryFor", "%v must not be negative", c.CallbackRetryFor))
	}
	return errors.Join(errs...)
}

// fieldErrorf is a configuration problem with the named field.
func fieldErrorf(field, format string, args ...any) error {
	return fmt.Errorf("%s: %w", field, fmt.Errorf(format, args...))
}
