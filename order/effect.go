package order

import "time"

// Effect is an output of Machine.Step: work for the shell, named in the
// imperative. See the package documentation for the order they are carried out in.
type Effect interface{ isEffect() }

// Persist asks the shell to store the order's current snapshot
// (Machine.View) durably. Version is the snapshot's version.
type Persist struct {
	Version uint64
}

// CallOut asks the shell to call the job's service now.
type CallOut struct {
	Job     JobRef
	Attempt int
}

// RetryCallOut asks the shell to call the job's service again at At (the
// shell may add jitter). It is a CallOut scheduled for later.
type RetryCallOut struct {
	Job     JobRef
	Attempt int
	At      time.Time
}

// StartTimer asks the shell to step DeadlinePassed at At. Starting a timer
// replaces any earlier one of the same order.
type StartTimer struct {
	At time.Time
}

// Reply answers the request whose event was just stepped. It carries the
// outcome of a callback; for Created it is empty and the shell answers with
// the order itself. Err, when set, is one of the package's sentinel errors.
type Reply struct {
	Outcome Outcome
	Err     error
}

// Notify announces that the order has finished with Status. The shell logs it
// (the seed's "All BatchJob Completed!!"), stops the order's timers and
// children, and delivers any completion webhook.
type Notify struct {
	Status Status
}

// Compensate asks the shell to call the job's cancel endpoint (with
// retries) and to step CompensationDone with the outcome.
type Compensate struct {
	Job JobRef
}

// Deliver asks the shell to POST the order's final JSON (the snapshot just
// persisted) to URL, with retries, and to step NotificationDone.
type Deliver struct {
	URL string
}

// JobRef is what the shell needs to call a job's service.
type JobRef struct {
	JobID          string
	Type           string
	Endpoint       string
	CancelEndpoint string
	Timeout        int
}

// Outcome is the answer to a callback.
type Outcome struct {
	OrderID     string
	JobID       string
	JobStatus   JobStatus
	OrderStatus Status
	// Duplicate is true when the callback changed nothing because the job was
	// already in the state it reports.
	Duplicate bool
}

func (Compensate) isEffect()   {}
func (Deliver) isEffect()      {}
func (Persist) isEffect()      {}
func (CallOut) isEffect()      {}
func (RetryCallOut) isEffect() {}
func (StartTimer) isEffect()   {}
func (Reply) isEffect()        {}
func (Notify) isEffect()       {}
