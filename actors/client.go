// Package actors is fanflow's runtime: one protoactor-go actor per order,
// owning one actor per job while that job has work (a callout, a retry wait
// or a compensation), each a thin shell that feeds events to the order's
// pure state machine (package order) and carries out its effects. Orders
// leave memory when they are finished, or (Config.PassivateAfter) when they
// only wait for callbacks, and come back from the store when needed.
// Client is the typed entry point the HTTP API calls.
package actors

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
	"github.com/google/uuid"
)

// Observer is told what the actors do, for metrics. Implementations are safe
// for concurrent use. Nil means no observer.
type Observer interface {
	// OrderStarted: an order began running in memory (created, activated or retried).
	OrderStarted()
	// OrderFinished: a running order reached s, age after its creation.
	OrderFinished(s order.Status, age time.Duration)
	// SnapshotStored: one snapshot became durable.
	SnapshotStored()
	// CalloutDone: one callout attempt ended, accepted or not.
	CalloutDone(accepted bool)
}

// runtime is what every actor of one Client shares. Read-only after New.
type runtime struct {
	cfg Config
	log *slog.Logger
	// debug is whether log takes debug records, decided once at New: asking
	// the handler on every callback costs more than the rest of the reply.
	debug   bool
	metrics observer
	types   map[string]order.JobSpec
	// durable maps the id of every order in memory to the JSON of its last
	// stored snapshot, so reads need no store round trip. Each order's
	// actor is the only writer of its entry.
	durable sync.Map
	// dir finds the actor of an order in memory.
	dir directory
	// disp runs the mailboxes of every order and job actor.
	disp *poolDispatcher
	// stashed, when set (by tests), is called each time an order actor
	// stashes a message while it waits for I/O.
	stashed func()
	// resident counts the order actors that have started and not yet stopped.
	resident atomic.Int64
	// alarms wakes orders that left memory while waiting, at their deadlines.
	alarms *alarms
	// find returns the actor of an order, activating it if need be (Client.find).
	find func(orderID string) *actor.PID
}

type observer struct{ o Observer }

func (o observer) started() {
	if o.o != nil {
		o.o.OrderStarted()
	}
}

func (o observer) finished(s order.Status, age time.Duration) {
	if o.o != nil {
		o.o.OrderFinished(s, age)
	}
}

func (o observer) persisted() {
	if o.o != nil {
		o.o.SnapshotStored()
	}
}

func (o observer) callout(ok bool) {
	if o.o != nil {
		o.o.CalloutDone(ok)
	}
}

// Client submits orders and delivers callbacks to their actors. It is safe
// for concurrent use; Close stops its actor system.
type Client struct {
	rt     *runtime
	system *actor.ActorSystem
}

// SubmitRequest is a new order.
type SubmitRequest struct {
	// Parameters is a JSON object, opaque to fanflow.
	Parameters json.RawMessage
	// Jobs are job type names; nil means every configured type.
	Jobs []string
	// Deadline counts from creation; zero means the configured default.
	Deadline time.Duration
	// NotifyURL receives the final order JSON; empty means the configured
	// default (Config.NotifyURL), if any.
	NotifyURL string
	// IdempotencyKey, when set, makes the create idempotent: while the key
	// is retained (Config.Retention), every create with it returns the same
	// order, never a second one.
	IdempotencyKey string
}

// MaxIdempotencyKey is the longest Idempotency-Key accepted, in bytes.
const MaxIdempotencyKey = 255

// CallbackRequest is a job service's callback.
type CallbackRequest struct {
	OrderID string
	JobID   string
	// Token is the callbackToken from the body or the X-Callback-Token header.
	Token  string
	Failed bool
	Result json.RawMessage
	Error  json.RawMessage
}

// New starts an actor system for cfg. obs may be nil.
func New(cfg Config, obs Observer) (*Client, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	types := make(map[string]order.JobSpec, len(cfg.Jobs))
	for _, j := range cfg.Jobs {
		types[j.Type] = j
	}
	log := cfg.Logger
	system := actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return log.With("lib", "protoactor") }),
		actor.WithDeadLetterRequestLogging(false),
	)
	// A request that reaches a stopped actor is answered from its dead letters.
	system.EventStream.Subscribe(func(ev any) {
		if d, ok := ev.(*actor.DeadLetterEvent); ok {
			if e, ok := d.Message.(envelope); ok {
				e.reply.send(deadLetter{})
			}
		}
	})
	c := &Client{rt: &runtime{cfg: cfg, log: log, debug: log.Enabled(context.Background(), slog.LevelDebug), metrics: observer{obs}, types: types,
		disp: newPoolDispatcher(defaultWorkers(), mailboxThroughput)}, system: system}
	c.rt.find = c.find
	c.rt.alarms = newAlarms(cfg.Now, func(id string) {
		if !system.IsStopped() {
			c.find(id) // it expires as it is activated
		}
	})
	return c, nil
}

// Close marks the actor system stopped: new requests get ErrClosed. Actors
// still holding timers or callouts run on until the process ends; snapshots
// already handed to the Saver are the Saver's to flush.
func (c *Client) Close() {
	c.rt.alarms.close()
	c.system.Shutdown()
	c.rt.disp.stop()
}

// NewID returns a new time-ordered id: a UUIDv7 in hex without dashes.
func NewID() string {
	u := uuid.Must(uuid.NewV7())
	return hex.EncodeToString(u[:])
}

// Submit creates an order and returns its first snapshot's JSON once that
// snapshot is durable. Its callouts start right after. With an idempotency
// key, a create that repeats one whose key is still held returns the first
// one's answer (or, once that order has left memory, its current state).
func (c *Client) Submit(ctx context.Context, req SubmitRequest) ([]byte, error) {
	ev, err := c.created(req)
	if err != nil {
		return nil, err
	}
	// The actor is spawned before the key is claimed, so that a concurrent
	// create that loses the claim finds it (and waits for its answer).
	pid := c.spawn(ev.OrderID, &boot{fresh: true})
	if _, ok := c.rt.dir.enter(ev.OrderID, pid); !ok {
		c.discard(ev.OrderID, pid)
		return nil, fmt.Errorf("order %s: %w: id already in use", ev.OrderID, ErrUnavailable)
	}
	if req.IdempotencyKey != "" {
		return c.submitOnce(ctx, req.IdempotencyKey, ev, pid)
	}
	return c.create(ctx, pid, ev)
}

func (c *Client) create(ctx context.Context, pid *actor.PID, ev order.Created) ([]byte, error) {
	data, _, err := c.createAnswered(ctx, pid, ev)
	return data, err
}

// createAnswered creates ev and says whether the outcome is known: false
// when the actor did not answer in time, in which case the order may still
// come into being.
func (c *Client) createAnswered(ctx context.Context, pid *actor.PID, ev order.Created) ([]byte, bool, error) {
	res, err := c.request(ctx, pid, createOrder{ev: ev})
	if errors.Is(err, actor.ErrDeadLetter) {
		return nil, true, fmt.Errorf("order %s: create: %w: its actor stopped", ev.OrderID, ErrUnavailable)
	}
	if err != nil {
		return nil, false, fmt.Errorf("order %s: create: %w", ev.OrderID, err)
	}
	r := res.(orderReply)
	return r.data, true, r.err
}

// submitOnce creates ev unless key already names an order, whose answer it
// then returns.
func (c *Client) submitOnce(ctx context.Context, key string, ev order.Created, pid *actor.PID) ([]byte, error) {
	claimKey := "idempotency:" + key
	for range 2 {
		held, won, err := c.rt.cfg.Claims.Claim(ctx, claimKey, []byte(ev.OrderID), c.rt.cfg.storeRetention())
		if err != nil {
			c.discard(ev.OrderID, pid)
			return nil, fmt.Errorf("idempotency key %q: %w: %w", key, ErrUnavailable, err)
		}
		if won {
			data, known, err := c.createAnswered(ctx, pid, ev)
			if err != nil && known {
				// Nothing was created: give the key back for the next try.
				// (Unanswered, the create may still succeed: the key stays,
				// and a repeat waits for that order's answer.)
				if rerr := c.rt.cfg.Claims.Release(context.WithoutCancel(ctx), claimKey, []byte(ev.OrderID)); rerr != nil {
					c.rt.log.Warn("idempotency key not released", "key", key, "orderId", ev.OrderID, "err", rerr)
				}
			}
			return data, err
		}
		first := string(held)
		data, err := c.ask(ctx, first, firstAnswer{}, "replay")
		if !errors.Is(err, ErrNotFound) {
			c.discard(ev.OrderID, pid)
			return data, err
		}
		// The key names an order that was never stored (its create failed
		// and the key was not given back): free it and claim again.
		if err := c.rt.cfg.Claims.Release(ctx, claimKey, held); err != nil {
			c.discard(ev.OrderID, pid)
			return nil, fmt.Errorf("idempotency key %q: %w: %w", key, ErrUnavailable, err)
		}
	}
	c.discard(ev.OrderID, pid)
	return nil, fmt.Errorf("idempotency key %q: %w: its order keeps vanishing", key, ErrUnavailable)
}

// Cancel cancels a running order and returns its JSON once the cancellation
// is durable; compensation of its accepted jobs follows. A finished order
// gives order.ErrOrderFinished.
func (c *Client) Cancel(ctx context.Context, orderID, reason string) ([]byte, error) {
	return c.ask(ctx, orderID, cancelOrder{reason: reason}, "cancel")
}

// Retry re-drives a failed or expired order and returns its JSON once that
// is durable. Another status gives order.ErrNotRetryable.
func (c *Client) Retry(ctx context.Context, orderID string) ([]byte, error) {
	return c.ask(ctx, orderID, retryOrder{}, "retry")
}

// ask sends a request that answers with the order to its actor, activating
// the order if need be.
func (c *Client) ask(ctx context.Context, orderID string, msg any, op string) ([]byte, error) {
	for range 3 {
		res, err := c.request(ctx, c.find(orderID), msg)
		if errors.Is(err, actor.ErrDeadLetter) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("order %s: %s: %w", orderID, op, err)
		}
		r := res.(orderReply)
		return r.data, r.err
	}
	return nil, fmt.Errorf("order %s: %s: %w: order actor kept stopping", orderID, op, ErrUnavailable)
}

// created validates a SubmitRequest and turns it into the Created event.
func (c *Client) created(req SubmitRequest) (order.Created, error) {
	names := req.Jobs
	if names == nil {
		names = make([]string, len(c.rt.cfg.Jobs))
		for i, j := range c.rt.cfg.Jobs {
			names[i] = j.Type
		}
	}
	if len(names) == 0 {
		return order.Created{}, &FieldError{Field: "jobs", Msg: "must name at least one job type"}
	}
	if len(req.Parameters) > 0 && !json.Valid(req.Parameters) {
		return order.Created{}, &FieldError{Field: "parameters", Msg: "must be valid JSON"}
	}
	if len(req.IdempotencyKey) > MaxIdempotencyKey {
		return order.Created{}, &FieldError{Field: "Idempotency-Key", Msg: fmt.Sprintf("must be at most %d bytes", MaxIdempotencyKey)}
	}
	if req.IdempotencyKey != "" && c.rt.cfg.Claims == nil {
		return order.Created{}, &FieldError{Field: "Idempotency-Key", Msg: "this server keeps no idempotency keys"}
	}
	if req.Deadline < 0 {
		return order.Created{}, &FieldError{Field: "deadlineMs", Msg: "must be a positive number of milliseconds"}
	}
	jobs := make([]order.NewJob, len(names))
	seen := make(map[string]bool, len(names))
	for i, n := range names {
		spec, ok := c.rt.types[n]
		if !ok {
			return order.Created{}, &FieldError{Code: "unknown_job_type", Field: fmt.Sprintf("jobs[%d]", i), Msg: fmt.Sprintf("unknown job type %q", n)}
		}
		if seen[n] {
			return order.Created{}, &FieldError{Field: fmt.Sprintf("jobs[%d]", i), Msg: fmt.Sprintf("job type %q is listed twice", n)}
		}
		seen[n] = true
		jobs[i] = order.NewJob{JobID: NewID(), Spec: spec}
	}
	deadline := req.Deadline
	if deadline == 0 {
		deadline = c.rt.cfg.DefaultDeadline
	}
	notify := req.NotifyURL
	if notify == "" {
		notify = c.rt.cfg.NotifyURL
	}
	now := c.rt.cfg.Now()
	return order.Created{At: now, OrderID: NewID(), Parameters: req.Parameters, Jobs: jobs, Deadline: now.Add(deadline),
		NotifyURL: notify, IdempotencyKey: req.IdempotencyKey}, nil
}

// Callback delivers a job service's callback to its order, activating the
// order from the store if it is not in memory, and returns the outcome once
// the change it made is durable.
func (c *Client) Callback(ctx context.Context, req CallbackRequest) (order.Outcome, error) {
	if len(req.Result) > 0 && !json.Valid(req.Result) {
		return order.Outcome{}, &FieldError{Field: "result", Msg: "must be valid JSON"}
	}
	if len(req.Error) > 0 && !json.Valid(req.Error) {
		return order.Outcome{}, &FieldError{Field: "error", Msg: "must be valid JSON"}
	}
	if t := c.rt.cfg.Tokens; t != nil && !t.Valid(req.OrderID, req.JobID, req.Token) {
		return order.Outcome{}, fmt.Errorf("order %s job %s: %w", req.OrderID, req.JobID, ErrUnauthorized)
	}
	msg := callback{ev: order.CallbackReceived{JobID: req.JobID, Failed: req.Failed, Result: req.Result, Error: req.Error}}
	// An actor may stop between the look-up and the request (a finished order
	// leaving memory): then it is activated again.
	for range 3 {
		res, err := c.request(ctx, c.find(req.OrderID), msg)
		if errors.Is(err, actor.ErrDeadLetter) {
			continue
		}
		if err != nil {
			return order.Outcome{}, fmt.Errorf("order %s: callback: %w", req.OrderID, err)
		}
		r := res.(callbackDone)
		return r.out, r.err
	}
	return order.Outcome{}, fmt.Errorf("order %s: callback: %w: order actor kept stopping", req.OrderID, ErrUnavailable)
}

// find returns the PID of an order's actor, spawning one that loads the
// order from the store if none is in memory.
func (c *Client) find(id string) *actor.PID {
	if pid, ok := c.rt.dir.lookup(id); ok {
		return pid
	}
	pid := c.spawn(id, &boot{})
	actual, ok := c.rt.dir.enter(id, pid)
	if !ok { // another request brought it in first
		c.discard(id, pid)
	}
	return actual
}

// spawn starts an actor incarnation for order id under a unique name.
func (c *Client) spawn(id string, b *boot) *actor.PID {
	return c.system.Root.SpawnPrefix(newOrderProps(c.rt, id, b), id+"#")
}

// discard stops an incarnation that will not serve its order.
func (c *Client) discard(id string, pid *actor.PID) {
	c.rt.dir.leave(id, pid)
	c.system.Root.Stop(pid)
}

// Get returns the stored snapshot of an order: from memory if the order is
// there, else from the store.
func (c *Client) Get(ctx context.Context, id string) ([]byte, error) {
	if data, ok := c.rt.durable.Load(id); ok {
		return data.([]byte), nil
	}
	rec, err := c.rt.cfg.Loader.Load(ctx, id)
	if err != nil {
		if errors.Is(err, persistence.ErrNotFound) {
			return nil, fmt.Errorf("order %s: %w", id, ErrNotFound)
		}
		return nil, fmt.Errorf("order %s: %w: %w", id, ErrUnavailable, err)
	}
	return rec.Data, nil
}

// request sends msg to pid and waits for the answer, bounded by the
// configured request timeout and ctx. A request that reached a stopped
// actor fails with actor.ErrDeadLetter, as a protoactor future would.
func (c *Client) request(ctx context.Context, pid *actor.PID, msg any) (any, error) {
	if c.system.IsStopped() {
		return nil, ErrClosed
	}
	timeout := c.rt.cfg.RequestTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("%w: no time left: %w", ErrUnavailable, context.DeadlineExceeded)
	}
	reply := make(replyTo, 1)
	c.system.Root.Send(pid, envelope{msg: msg, reply: reply})
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case res := <-reply:
		if _, ok := res.(deadLetter); ok {
			return nil, actor.ErrDeadLetter
		}
		return res, nil
	case <-t.C:
		return nil, fmt.Errorf("%w: no answer within %s", ErrUnavailable, timeout)
	}
}

// Activate brings an order into memory from the store, if it is not there
// already: a running order re-arms its deadline and calls out again every job
// whose callout was never acknowledged. Recovery calls it for every running order.
func (c *Client) Activate(orderID string) {
	c.find(orderID)
}

// Resident returns the number of orders in memory: order actors that have
// started and not yet stopped, including those about to stop.
func (c *Client) Resident() int {
	return int(c.rt.resident.Load())
}

// Passivated returns the number of running orders that have left memory
// while waiting for callbacks (Config.PassivateAfter) and are not back yet.
func (c *Client) Passivated() int {
	return c.rt.alarms.len()
}

// List returns a page of stored orders, newest first.
func (c *Client) List(ctx context.Context, q persistence.Query) (persistence.Page, error) {
	page, err := c.rt.cfg.Loader.List(ctx, q)
	if err != nil && !errors.Is(err, persistence.ErrBadCursor) {
		return page, fmt.Errorf("list: %w: %w", ErrUnavailable, err)
	}
	return page, err
}
