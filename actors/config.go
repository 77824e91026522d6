package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
)

// Callout is one call of a job's service.
type Callout struct {
	OrderID  string
	JobID    string
	Endpoint string
	Timeout  int
	Attempt  int
	// Token is the callbackToken the job service must echo; empty when
	// callbacks are not authenticated.
	Token string
}

// Caller performs callouts. Implementations are safe for concurrent use.
type Caller interface {
	// Call sends the callout and returns nil when the service accepted it
	// (2xx). Otherwise retryable tells whether another attempt may succeed
	// (network error, 408, 429, 5xx).
	Call(ctx context.Context, c Callout) (retryable bool, err error)
}

// Poster delivers completion webhooks. Implementations are safe for concurrent use.
type Poster interface {
	// Post sends body as JSON to url; retryable is as for Caller.Call.
	Post(ctx context.Context, url string, body []byte) (retryable bool, err error)
}

// Saver writes snapshots; *persistence.Committer is the production one.
type Saver interface {
	// Enqueue queues r for writing and calls done once it is durable or failed.
	// It must not block on I/O.
	Enqueue(r persistence.Record, done func(error))
}

// Loader reads snapshots; every persistence.Store is one.
type Loader interface {
	Load(ctx context.Context, orderID string) (persistence.Record, error)
	List(ctx context.Context, q persistence.Query) (persistence.Page, error)
}

// Claimer holds idempotency keys; every persistence.Store is one.
type Claimer interface {
	Claim(ctx context.Context, key string, value []byte, ttl time.Duration) (held []byte, won bool, err error)
	Release(ctx context.Context, key string, value []byte) error
}

// Tokens signs and checks callback tokens.
type Tokens interface {
	Token(orderID, jobID string) string
	Valid(orderID, jobID, token string) bool
}

// Config wires the actors to the rest of fanflow. Each field says its default.
type Config struct {
	// Loader reads orders that are not in memory. Required.
	Loader Loader
	// Saver writes snapshots. Required.
	Saver Saver
	// Claims holds idempotency keys; nil refuses requests that carry one.
	Claims Claimer
	// Caller performs callouts. Required.
	Caller Caller
	// Jobs are the configured job types (default order.DefaultJobs()).
	Jobs []order.JobSpec
	// Policy is the callout retry policy (defaults in order.Policy).
	Policy order.Policy
	// DefaultDeadline applies when a create request has none (default 540s).
	DefaultDeadline time.Duration
	// Retention is how long finished orders are kept (default 24h; 0 in the
	// store means forever, so a negative value keeps them forever).
	Retention time.Duration
	// FinishedIdle is how long a finished order stays in memory without
	// messages before its actor stops (default 2s).
	FinishedIdle time.Duration
	// PassivateAfter is how long a running order that only waits for
	// callbacks (order.Machine.Waiting) stays in memory without messages
	// before it leaves: its state is in the store, its deadline is kept by
	// the Client, and its next callback, request or deadline brings it back.
	// Zero or negative keeps waiting orders in memory (default 0: off).
	PassivateAfter time.Duration
	// RequestTimeout bounds one request to an order actor (default 10s).
	RequestTimeout time.Duration
	// CalloutTimeout bounds one callout attempt (default 5s).
	CalloutTimeout time.Duration
	// Tokens signs callouts and checks callbacks; nil disables both.
	Tokens Tokens
	// Poster delivers completion webhooks; nil fails every delivery.
	Poster Poster
	// NotifyURL receives every finished order that has no notifyUrl of its
	// own (default none).
	NotifyURL string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives the actors' logs (default slog.Default()).
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if len(c.Jobs) == 0 {
		c.Jobs = order.DefaultJobs()
	}
	c.Policy = c.Policy.WithDefaults()
	if c.DefaultDeadline <= 0 {
		c.DefaultDeadline = 540 * time.Second
	}
	if c.Retention == 0 {
		c.Retention = 24 * time.Hour
	}
	if c.FinishedIdle <= 0 {
		c.FinishedIdle = 2 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.CalloutTimeout <= 0 {
		c.CalloutTimeout = 5 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every problem with the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.Loader == nil {
		errs = append(errs, errors.New("actors: Loader is required"))
	}
	if c.Saver == nil {
		errs = append(errs, errors.New("actors: Saver is required"))
	}
	if c.Caller == nil {
		errs = append(errs, errors.New("actors: Caller is required"))
	}
	seen := map[string]bool{}
	for i, j := range c.Jobs {
		if j.Type == "" || j.Endpoint == "" || j.Timeout < 0 || seen[j.Type] {
			errs = append(errs, fmt.Errorf("actors: jobs[%d]: type %q needs a unique name, an endpoint and a timeout >= 0", i, j.Type))
		}
		seen[j.Type] = true
	}
	return errors.Join(errs...)
}

// retention as the store wants it: zero means keep forever.
func (c *Config) storeRetention() time.Duration {
	if c.Retention < 0 {
		return 0
	}
	return c.Retention
}
