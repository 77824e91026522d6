package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
)

// Messages between the Client, the order actors and their job actors. All
// are local (never serialized), so they carry Go values, errors included.

// envelope carries a request from the Client to an order actor with the
// channel its answer goes to. Requests do not use protoactor futures: a
// future is an actor of its own (registered, timed, removed) for every
// create and callback, which cost more than the rest of the request.
type envelope struct {
	msg   any
	reply replyTo
}

// replyTo receives the one answer to a request. It has room for it, so an
// actor never blocks on answering; a second answer, if any, is dropped.
type replyTo chan any

// send answers the request, if anyone asked.
func (r replyTo) send(v any) {
	if r == nil {
		return
	}
	select {
	case r <- v:
	default:
	}
}

// deadLetter answers a request whose actor had stopped (protoactor
// delivered it to its dead letters).
type deadLetter struct{}

// createOrder asks a fresh order actor to step Created.
type createOrder struct{ ev order.Created }

// callback asks an order actor to step CallbackReceived.
type callback struct{ ev order.CallbackReceived }

// cancelOrder asks an order actor to step CancelRequested.
type cancelOrder struct{ reason string }

// retryOrder asks an order actor to step RetryRequested.
type retryOrder struct{}

// firstAnswer asks an order actor for the answer its create got (a replay
// of an idempotent create), or its current state if it was loaded.
type firstAnswer struct{}

// orderReply answers createOrder, cancelOrder and retryOrder with the
// order's JSON once the change is durable.
type orderReply struct {
	data []byte
	err  error
}

// callbackDone answers callback once its state change is durable.
type callbackDone struct {
	out order.Outcome
	err error
}

// loaded carries the result of an order actor's load from the store: of
// its own load number gen, or (preload) of the batch Recover loaded for it.
type loaded struct {
	rec persistence.Record
	// decoded is rec.Data decoded, when the sender did it (nil: not done).
	decoded *order.Order
	err     error
	gen     uint64
	preload bool
}

// persisted reports that the snapshot of version was written (err nil) or not.
type persisted struct {
	version uint64
	err     error
}

// deadlineFired is sent by an order's timer.
type deadlineFired struct{ deadline time.Time }

// retryEvent re-delivers an internal event whose snapshot could not be stored.
type retryEvent struct{ ev order.Event }

// passivate stops an order actor that has left the directory, once the
// messages sent to it before have been handled.
type passivate struct{}

// reactivate tries again an activation whose snapshot could not be stored.
type reactivate struct{}

// idleCheck is sent by an order actor's idle timer; activity is the count
// of messages the actor had handled when the timer was set.
type idleCheck struct {
	activity uint64
	after    time.Duration // how long the timer ran, to run it again
}

// callOut asks a job actor to call its service, at at (zero: now).
type callOut struct {
	attempt int
	at      time.Time
}

// compensate asks a job actor to call its cancel endpoint, with retries.
type compensate struct{}

// finish tells a job actor that its order has finished: it stops once any
// compensation it was asked for is done.
type finish struct{}

// compensated reports the end of a compensation to the order actor.
type compensated struct {
	jobID    string
	attempts int
	err      error
	done     *actor.PID // the job actor, which stops: forget it
}

// notified reports the end of a webhook delivery to the order actor.
type notified struct {
	attempts int
	err      error
}

// calloutDone is the result of one callout attempt, sent by the goroutine
// that performed it to its job actor, which forwards it to the order actor.
type calloutDone struct {
	jobID     string
	attempt   int
	err       error
	retryable bool
	done      *actor.PID // set when the job actor stops after this: forget it
}

// Messages that may reach a stopped actor are not worth a dead-letter log line.
func (persisted) IgnoreDeadLetterLogging()     {}
func (deadlineFired) IgnoreDeadLetterLogging() {}
func (retryEvent) IgnoreDeadLetterLogging()    {}
func (callOut) IgnoreDeadLetterLogging()       {}
func (calloutDone) IgnoreDeadLetterLogging()   {}
func (loaded) IgnoreDeadLetterLogging()        {}
func (compensated) IgnoreDeadLetterLogging()   {}
func (notified) IgnoreDeadLetterLogging()      {}
func (finish) IgnoreDeadLetterLogging()        {}
func (reactivate) IgnoreDeadLetterLogging()    {}
func (passivate) IgnoreDeadLetterLogging()     {}
func (idleCheck) IgnoreDeadLetterLogging()     {}

var _ actor.IgnoreDeadLetterLogging = persisted{}

func (envelope) IgnoreDeadLetterLogging() {}
