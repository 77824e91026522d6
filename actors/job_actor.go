package actors

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/fanflow/fanflow/order"
)

// jobActor performs the callouts of one job for its parent order actor. A
// callout runs on its own goroutine and reports back as a message, so neither
// this actor nor its parent ever blocks on the network. Retries are decided by
// the order's machine (RetryCallOut); this actor only waits for their time,
// with jitter. It lives only while it has work: once a callout is accepted,
// or a compensation is done, it reports that it stops (done) and stops; its
// parent spawns a new one when the job needs work again.
type jobActor struct {
	rt      *runtime
	parent  *actor.PID // the order actor
	orderID string
	job     order.JobRef
	timer   *time.Timer
	cancel  context.CancelFunc

	compensating bool // a compensation is under way
	finished     bool // the order has finished: stop when idle
}

func newJobProps(rt *runtime, parent *actor.PID, orderID string, j order.JobRef) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		return &jobActor{rt: rt, parent: parent, orderID: orderID, job: j}
	}, actor.WithDispatcher(rt.disp))
}

// Receive implements actor.Actor.
func (j *jobActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case callOut:
		if j.finished || j.compensating {
			return
		}
		if j.timer != nil {
			j.timer.Stop()
			j.timer = nil
		}
		if wait := msg.at.Sub(j.rt.cfg.Now()); !msg.at.IsZero() && wait > 0 {
			self, root := ctx.Self(), ctx.ActorSystem().Root
			now := callOut{attempt: msg.attempt}
			j.timer = time.AfterFunc(jitter(wait), func() { root.Send(self, now) })
			return
		}
		j.call(ctx, msg.attempt)
	case calloutDone:
		if msg.err == nil && !j.compensating {
			// Accepted: nothing is left to do until the order asks again.
			msg.done = ctx.Self()
			ctx.Send(j.parent, msg)
			ctx.Stop(ctx.Self())
			return
		}
		ctx.Send(j.parent, msg)
	case compensate:
		j.stopCallouts()
		if !j.compensating {
			j.compensating = true
			j.compensate(ctx)
		}
	case compensated:
		// Its callouts were stopped for the compensation: nothing is left.
		j.compensating = false
		msg.done = ctx.Self()
		ctx.Send(j.parent, msg)
		ctx.Stop(ctx.Self())
	case finish:
		j.finished = true
		j.stopCallouts()
		if !j.compensating {
			ctx.Stop(ctx.Self())
		}
	case *actor.Stopping:
		if j.timer != nil {
			j.timer.Stop()
		}
		if j.cancel != nil {
			j.cancel()
		}
	}
}

// stopCallouts cancels a due retry and a callout under way.
func (j *jobActor) stopCallouts() {
	if j.timer != nil {
		j.timer.Stop()
		j.timer = nil
	}
	if j.cancel != nil {
		j.cancel()
		j.cancel = nil
	}
}

// compensate calls the job's cancel endpoint on its own goroutine, with
// the retry policy, and reports the outcome to itself.
func (j *jobActor) compensate(ctx actor.Context) {
	c := Callout{OrderID: j.orderID, JobID: j.job.JobID, Endpoint: j.job.CancelEndpoint, Timeout: j.job.Timeout}
	if j.rt.cfg.Tokens != nil {
		c.Token = j.rt.cfg.Tokens.Token(j.orderID, j.job.JobID)
	}
	self, root, rt := ctx.Self(), ctx.ActorSystem().Root, j.rt
	go func() {
		attempts, err := withRetries(rt.cfg.Policy, rt.cfg.CalloutTimeout, func(cctx context.Context) (bool, error) {
			c.Attempt++
			return rt.cfg.Caller.Call(cctx, c)
		})
		if err != nil {
			rt.log.Warn("compensation failed", "orderId", c.OrderID, "jobId", c.JobID, "endpoint", c.Endpoint, "attempts", attempts, "err", err)
		}
		root.Send(self, compensated{jobID: c.JobID, attempts: attempts, err: err})
	}()
}

// withRetries calls fn until it succeeds, fails for good, or has been tried
// p.MaxAttempts times, waiting the policy's backoff (with jitter) between
// tries. It returns the number of tries and the last error.
func withRetries(p order.Policy, timeout time.Duration, fn func(context.Context) (bool, error)) (int, error) {
	for attempt := 1; ; attempt++ {
		c, cancel := context.WithTimeout(context.Background(), timeout)
		retryable, err := fn(c)
		cancel()
		if err == nil || !retryable || attempt >= p.MaxAttempts {
			return attempt, err
		}
		time.Sleep(jitter(p.Backoff(attempt + 1)))
	}
}

func (j *jobActor) call(ctx actor.Context, attempt int) {
	c := Callout{OrderID: j.orderID, JobID: j.job.JobID, Endpoint: j.job.Endpoint, Timeout: j.job.Timeout, Attempt: attempt}
	if j.rt.cfg.Tokens != nil {
		c.Token = j.rt.cfg.Tokens.Token(j.orderID, j.job.JobID)
	}
	cctx, cancel := context.WithTimeout(context.Background(), j.rt.cfg.CalloutTimeout)
	j.cancel = cancel
	self, root, caller, m := ctx.Self(), ctx.ActorSystem().Root, j.rt.cfg.Caller, j.rt.metrics
	go func() {
		defer cancel()
		retryable, err := caller.Call(cctx, c)
		m.callout(err == nil)
		root.Send(self, calloutDone{jobID: c.JobID, attempt: attempt, err: err, retryable: retryable})
	}()
}

// jitter spreads a retry delay over [d/2, d), so that retries of many jobs
// that failed together do not arrive together.
func jitter(d time.Duration) time.Duration {
	if d < 2 {
		return d
	}
	return d/2 + rand.N(d/2)
}
