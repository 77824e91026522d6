package order

import (
	"encoding/json"
	"time"
)

// Event is an input to Machine.Step. Events are facts, named in the past
// tense; the shell stamps each with the time it happened (At).
type Event interface{ isEvent() }

// NewJob is one job of a Created event: its id, chosen by the shell, and its type.
type NewJob struct {
	JobID string
	Spec  JobSpec
}

// Created starts a new order. It is valid only on a Machine from New.
type Created struct {
	At         time.Time
	OrderID    string
	Parameters json.RawMessage
	Jobs       []NewJob
	// Deadline is the absolute time at which a running order expires.
	Deadline time.Time
	// NotifyURL, when set, receives the final order JSON (a Deliver effect).
	NotifyURL string
	// IdempotencyKey is kept on the order for audit.
	IdempotencyKey string
}

// Activated tells a Machine built by Restore that it is live again (after a
// restart, or when a callback finds it out of memory). A running order re-arms
// its deadline, expires if the deadline has passed, and calls out again every
// job whose callout was never acknowledged.
type Activated struct {
	At time.Time
}

// CalloutAccepted reports that the job service answered 2xx to a callout.
type CalloutAccepted struct {
	At      time.Time
	JobID   string
	Attempt int
}

// CalloutFailed reports that a callout attempt did not succeed. Retryable is
// true for network errors, 408, 429 and 5xx; the Machine decides, from its
// Policy, whether another attempt follows.
type CalloutFailed struct {
	At        time.Time
	JobID     string
	Attempt   int
	Retryable bool
	Err       string
}

// CallbackReceived reports a job service's callback. Failed is true when the
// callback said "status": "failed".
type CallbackReceived struct {
	At     time.Time
	JobID  string
	Failed bool
	Result json.RawMessage
	Error  json.RawMessage
}

// DeadlinePassed reports that a StartTimer fired. A timer that fires early
// (At before the order's deadline) is ignored.
type DeadlinePassed struct {
	At time.Time
}

// CancelRequested asks to cancel a running order. Reason is recorded.
type CancelRequested struct {
	At     time.Time
	Reason string
}

// RetryRequested asks to re-drive a failed or expired order until Deadline.
// Completed jobs stay completed; a job whose callback came late, with
// success, takes that result; the jobs that failed, were never accepted, or
// did not call back in time (expired, or cancelled by compensation) are
// called out again. In a failed order, a job still under way at its service
// (accepted, not compensated) keeps waiting for its callback.
type RetryRequested struct {
	At       time.Time
	Deadline time.Time
}

// CompensationDone reports the end of a Compensate: Err is empty when the
// cancel endpoint accepted it, else why it was given up.
type CompensationDone struct {
	At       time.Time
	JobID    string
	Attempts int
	Err      string
}

// NotificationDone reports the end of a Deliver, like CompensationDone.
type NotificationDone struct {
	At       time.Time
	Attempts int
	Err      string
}

func (CancelRequested) isEvent()  {}
func (RetryRequested) isEvent()   {}
func (CompensationDone) isEvent() {}
func (NotificationDone) isEvent() {}
func (Created) isEvent()          {}
func (Activated) isEvent()        {}
func (CalloutAccepted) isEvent()  {}
func (CalloutFailed) isEvent()    {}
func (CallbackReceived) isEvent() {}
func (DeadlinePassed) isEvent()   {}
