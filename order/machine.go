package order

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Errors returned by Step for input that is wrong from the outside, and
// carried by Reply for requests that are refused. Compare with errors.Is.
var (
	// ErrInvalidEvent: the event is malformed or not valid in this state
	// (a second Created, an event before Created, a missing field).
	ErrInvalidEvent = errors.New("order: invalid event")
	// ErrUnknownJob: the event names a job that is not in the order.
	ErrUnknownJob = errors.New("order: unknown job")
	// ErrOrderFinished: a callback arrived after the order expired, was
	// cancelled or failed. The callback is recorded on the job for audit.
	ErrOrderFinished = errors.New("order: order already finished")
	// ErrJobConflict: a callback reports a different final status than the
	// one the job already has.
	ErrJobConflict = errors.New("order: job already finished with another status")
	// ErrNotRetryable: a retry was asked of an order that is not failed or expired.
	ErrNotRetryable = errors.New("order: only a failed or expired order can be retried")
)

// Policy is the callout retry policy a Machine applies.
type Policy struct {
	// MaxAttempts is the number of callout attempts per job before it fails
	// (default 5).
	MaxAttempts int
	// BackoffBase is the delay before the first retry; each retry doubles it
	// (default 100ms).
	BackoffBase time.Duration
	// BackoffMax caps the delay between attempts (default 10s).
	BackoffMax time.Duration
}

// WithDefaults returns p with its zero fields set to their defaults.
func (p Policy) WithDefaults() Policy {
	if p.MaxAttempts < 1 {
		p.MaxAttempts = 5
	}
	if p.BackoffBase <= 0 {
		p.BackoffBase = 100 * time.Millisecond
	}
	if p.BackoffMax <= 0 {
		p.BackoffMax = 10 * time.Second
	}
	return p
}

// Backoff returns the nominal delay before attempt number next (2, 3, …):
// BackoffBase doubled for each earlier retry, capped at BackoffMax.
func (p Policy) Backoff(next int) time.Duration {
	p = p.WithDefaults()
	d := p.BackoffBase
	for i := 2; i < next && d < p.BackoffMax; i++ {
		d *= 2
	}
	return min(d, p.BackoffMax)
}

// Machine is the state machine of one order. It is not safe for concurrent
// use: its owner (the order's actor) is its only caller. It does no I/O and
// reads no clock; see the package documentation for the caller's duties.
type Machine struct {
	o      Order
	policy Policy
	live   bool // Created or Activated has been stepped
}

// New returns a Machine that awaits its Created event.
func New(p Policy) *Machine {
	return &Machine{policy: p.WithDefaults()}
}

// Restore returns a Machine holding a snapshot taken by Snapshot (or decoded
// from a store). Step Activated on it before anything else.
func Restore(o Order, p Policy) (*Machine, error) {
	switch {
	case o.Schema > SchemaVersion:
		return nil, fmt.Errorf("order %s: snapshot schema %d is newer than %d", o.OrderID, o.Schema, SchemaVersion)
	case o.OrderID == "" || o.Status == 0 || len(o.Jobs) == 0:
		return nil, fmt.Errorf("order %q: snapshot lacks id, status or jobs", o.OrderID)
	}
	for _, j := range o.Jobs {
		if j.JobID == "" || j.Status == 0 {
			return nil, fmt.Errorf("order %s: snapshot has a job without id or status", o.OrderID)
		}
	}
	return &Machine{o: o.Clone(), policy: p.WithDefaults()}, nil
}

// View returns the machine's current state. The caller must not modify it
// nor keep it past the next Step; use Snapshot for a copy.
func (m *Machine) View() *Order { return &m.o }

// Snapshot returns a deep copy of the current state.
func (m *Machine) Snapshot() Order { return m.o.Clone() }

// Status returns the order's status (zero before Created).
func (m *Machine) Status() Status { return m.o.Status }

// Step applies one event and returns the effects the caller must carry out,
// in order. It returns an error, and changes nothing, only for input that is
// wrong from the outside; duplicate and stale events return no effects (or
// only a Reply) and no error.
func (m *Machine) Step(e Event) ([]Effect, error) {
	if c, ok := e.(Created); ok {
		return m.create(c)
	}
	if m.o.Status == 0 {
		return nil, fmt.Errorf("%w: %T before Created", ErrInvalidEvent, e)
	}
	switch e := e.(type) {
	case Activated:
		return m.activate(e)
	case CalloutAccepted:
		return m.calloutAccepted(e)
	case CalloutFailed:
		return m.calloutFailed(e)
	case CallbackReceived:
		return m.callback(e)
	case DeadlinePassed:
		return m.deadline(e.At)
	case CancelRequested:
		return m.cancel(e)
	case RetryRequested:
		return m.retry(e)
	case CompensationDone:
		return m.compensated(e)
	case NotificationDone:
		return m.notified(e)
	default:
		return nil, fmt.Errorf("%w: unknown event %T", ErrInvalidEvent, e)
	}
}

func (m *Machine) create(c Created) ([]Effect, error) {
	switch {
	case m.o.Status != 0:
		return nil, fmt.Errorf("%w: order %s already created", ErrInvalidEvent, m.o.OrderID)
	case c.OrderID == "":
		return nil, fmt.Errorf("%w: Created without order id", ErrInvalidEvent)
	case len(c.Jobs) == 0:
		return nil, fmt.Errorf("%w: order %s has no jobs", ErrInvalidEvent, c.OrderID)
	case c.At.IsZero() || c.Deadline.IsZero():
		return nil, fmt.Errorf("%w: order %s: Created without time or deadline", ErrInvalidEvent, c.OrderID)
	}
	jobs := make([]Job, len(c.Jobs))
	seen := make(map[string]bool, len(c.Jobs))
	for i, nj := range c.Jobs {
		if nj.JobID == "" || seen[nj.JobID] {
			return nil, fmt.Errorf("%w: order %s: job id %q empty or repeated", ErrInvalidEvent, c.OrderID, nj.JobID)
		}
		seen[nj.JobID] = true
		jobs[i] = Job{JobID: nj.JobID, Type: nj.Spec.Type, Endpoint: nj.Spec.Endpoint, Timeout: nj.Spec.Timeout,
			CancelEndpoint: nj.Spec.CancelEndpoint, Status: JobPending, Attempts: 1}
	}
	params := c.Parameters
	if len(params) == 0 {
		params = json.RawMessage("{}")
	}
	m.o = Order{Schema: SchemaVersion, OrderID: c.OrderID, Status: Running, Parameters: params, Jobs: jobs,
		CreatedAt: c.At, UpdatedAt: c.At, Deadline: c.Deadline, NotifyURL: c.NotifyURL, IdempotencyKey: c.IdempotencyKey, Version: 1}
	m.live = true
	effs := make([]Effect, 0, 3+len(jobs))
	effs = append(effs, Persist{Version: 1}, Reply{}, StartTimer{At: c.Deadline})
	for i := range jobs {
		effs = append(effs, CallOut{Job: ref(&jobs[i]), Attempt: 1})
	}
	return effs, nil
}

func (m *Machine) activate(e Activated) ([]Effect, error) {
	if m.live {
		return nil, nil
	}
	m.live = true
	if m.o.Status.Terminal() {
		return m.unsettled(), nil
	}
	if !e.At.Before(m.o.Deadline) {
		return m.finish(e.At, Expired, &Error{Code: "deadline_exceeded", Message: "the order's deadline passed before every job called back"}, nil), nil
	}
	var calls []Effect
	resent := false
	for i := range m.o.Jobs {
		j := &m.o.Jobs[i]
		if j.Status != JobPending {
			continue
		}
		if j.RetryAt != nil {
			calls = append(calls, RetryCallOut{Job: ref(j), Attempt: j.Attempts, At: *j.RetryAt})
			continue
		}
		// The last callout was never acknowledged: send it again as a new attempt.
		j.Attempts++
		resent = true
		calls = append(calls, CallOut{Job: ref(j), Attempt: j.Attempts})
	}
	effs := make([]Effect, 0, 2+len(calls))
	// Only a new attempt changes the state; rescheduling a persisted retry does not.
	if resent && m.changed(e.At) {
		effs = append(effs, Persist{Version: m.o.Version})
	}
	effs = append(effs, StartTimer{At: m.o.Deadline})
	return append(effs, calls...), nil
}

// changed records a state change at t and reports true, for use in conditions.
func (m *Machine) changed(t time.Time) bool {
	m.o.Version++
	m.o.UpdatedAt = t
	return true
}

func (m *Machine) calloutAccepted(e CalloutAccepted) ([]Effect, error) {
	j := m.o.Job(e.JobID)
	if j == nil {
		return nil, fmt.Errorf("%w: %s in order %s", ErrUnknownJob, e.JobID, m.o.OrderID)
	}
	if j.Status != JobPending {
		return nil, nil // duplicate: the job has moved on
	}
	j.Status = JobProcessing
	j.RetryAt = nil
	m.changed(e.At)
	effs := []Effect{Persist{Version: m.o.Version}}
	// Accepted after its order failed, expired or was cancelled: the job is
	// under way at its service, so it is compensated like the others were.
	if m.o.Status.Terminal() && j.CancelEndpoint != "" && j.Compensation == nil {
		j.Compensation = &Delivery{Status: DeliveryPending}
		effs = append(effs, Compensate{Job: ref(j)})
	}
	return effs, nil
}

func (m *Machine) calloutFailed(e CalloutFailed) ([]Effect, error) {
	j := m.o.Job(e.JobID)
	if j == nil {
		return nil, fmt.Errorf("%w: %s in order %s", ErrUnknownJob, e.JobID, m.o.OrderID)
	}
	// RetryAt stays set while the retry is due or under way, so it does not
	// make a failure stale: the attempt number alone tells the current one.
	if m.o.Status.Terminal() || j.Status != JobPending || e.Attempt != j.Attempts {
		return nil, nil // stale: an older attempt, or the job has moved on
	}
	if e.Retryable && j.Attempts-max(j.FirstAttempt, 1)+1 < m.policy.MaxAttempts {
		at := e.At.Add(m.policy.Backoff(j.Attempts + 1))
		j.Attempts++
		j.RetryAt = &at
		m.changed(e.At)
		return []Effect{Persist{Version: m.o.Version}, RetryCallOut{Job: ref(j), Attempt: j.Attempts, At: at}}, nil
	}
	msg := fmt.Sprintf("callout to %s failed after %d attempt(s): %s", j.Endpoint, j.Attempts, e.Err)
	j.Status = JobFailed
	j.Error = errorJSON("callout_failed", msg)
	j.CompletedAt = ptr(e.At)
	return m.finish(e.At, Failed, &Error{Code: "job_failed", Message: fmt.Sprintf("job %s (%s) failed: %s", j.JobID, j.Type, msg)}, nil), nil
}

func (m *Machine) callback(e CallbackReceived) ([]Effect, error) {
	j := m.o.Job(e.JobID)
	if j == nil {
		return nil, fmt.Errorf("%w: %s in order %s", ErrUnknownJob, e.JobID, m.o.OrderID)
	}
	want := JobCompleted
	if e.Failed {
		want = JobFailed
	}
	if j.Status.Done() {
		if j.Status == want {
			return []Effect{Reply{Outcome: m.outcome(j, true)}}, nil
		}
		return []Effect{Reply{Outcome: m.outcome(j, false), Err: ErrJobConflict}}, nil
	}
	if m.o.Status.Terminal() {
		// The order expired, failed or was cancelled first: keep the late
		// callback for audit (the first one only) and refuse it.
		if j.LateCallback != nil {
			return []Effect{Reply{Outcome: m.outcome(j, true), Err: ErrOrderFinished}}, nil
		}
		j.LateCallback = &LateCallback{At: e.At, Status: want, Result: e.Result, Error: e.Error}
		m.changed(e.At)
		return []Effect{Persist{Version: m.o.Version}, Reply{Outcome: m.outcome(j, false), Err: ErrOrderFinished}}, nil
	}
	j.Status = want
	j.RetryAt = nil
	j.Result = e.Result
	j.Error = e.Error
	j.CompletedAt = ptr(e.At)
	if want == JobFailed {
		if len(j.Error) == 0 {
			j.Error = errorJSON("job_failed", "the job service reported failure")
		}
		msg := fmt.Sprintf("job %s (%s) reported failure", j.JobID, j.Type)
		return m.finish(e.At, Failed, &Error{Code: "job_failed", Message: msg}, replyTo(j)), nil
	}
	if pending, _ := Tally(m.o.Jobs); pending == 0 {
		return m.finish(e.At, Completed, nil, replyTo(j)), nil
	}
	m.changed(e.At)
	return []Effect{Persist{Version: m.o.Version}, Reply{Outcome: m.outcome(j, false)}}, nil
}

func (m *Machine) deadline(at time.Time) ([]Effect, error) {
	if m.o.Status.Terminal() || at.Before(m.o.Deadline) {
		return nil, nil
	}
	return m.finish(at, Expired, &Error{Code: "deadline_exceeded", Message: "the order's deadline passed before every job called back"}, nil), nil
}

// answer says whom finish replies to: nobody (nil), the request that caused
// it (job nil), or the callback of job.
type answer struct{ job *Job }

func replyTo(j *Job) *answer { return &answer{job: j} }

// finish moves a running order to a terminal status. reply, when not nil,
// answers the request that caused it, after the change. Unless the order completed, every job
// that was accepted and not completed is compensated; the webhook, if any,
// is delivered.
func (m *Machine) finish(at time.Time, s Status, oe *Error, reply *answer) []Effect {
	m.o.Status = s
	m.o.Error = oe
	m.o.CompletedAt = ptr(at)
	for i := range m.o.Jobs {
		j := &m.o.Jobs[i]
		j.RetryAt = nil
		if s != Completed && j.Status == JobProcessing && j.CancelEndpoint != "" {
			j.Compensation = &Delivery{Status: DeliveryPending}
		}
	}
	if m.o.NotifyURL != "" {
		m.o.Notification = &Delivery{Status: DeliveryPending}
	}
	m.changed(at)
	effs := []Effect{Persist{Version: m.o.Version}}
	switch {
	case reply == nil:
	case reply.job == nil:
		effs = append(effs, Reply{})
	default:
		effs = append(effs, Reply{Outcome: m.outcome(reply.job, false)})
	}
	effs = append(effs, m.unsettled()...)
	return append(effs, Notify{Status: s})
}

// unsettled returns the Compensate and Deliver effects still due.
func (m *Machine) unsettled() []Effect {
	var effs []Effect
	for i := range m.o.Jobs {
		if c := m.o.Jobs[i].Compensation; c != nil && c.Status == DeliveryPending {
			effs = append(effs, Compensate{Job: ref(&m.o.Jobs[i])})
		}
	}
	if n := m.o.Notification; n != nil && n.Status == DeliveryPending {
		effs = append(effs, Deliver{URL: m.o.NotifyURL})
	}
	return effs
}

// Settled reports whether the order has finished and nothing it started is
// still under way: no compensation or webhook delivery pending.
func (m *Machine) Settled() bool {
	return m.o.Status != 0 && m.o.Status.Terminal() && len(m.unsettled()) == 0
}

// Waiting reports whether the order is running and only waits for
// callbacks: every job's callout was accepted (or the job is done), so no
// callout or retry is due or under way, and no compensation or webhook
// delivery is pending. Such an order needs nothing from its owner until a
// callback, a request or its deadline comes; its owner may keep it in the
// store alone meanwhile.
func (m *Machine) Waiting() bool {
	if m.o.Status != Running || len(m.unsettled()) > 0 {
		return false
	}
	for i := range m.o.Jobs {
		if m.o.Jobs[i].Status == JobPending {
			return false
		}
	}
	return true
}

func (m *Machine) cancel(e CancelRequested) ([]Effect, error) {
	if m.o.Status.Terminal() {
		return []Effect{Reply{Err: ErrOrderFinished}}, nil
	}
	msg := "cancelled on request"
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return m.finish(e.At, Cancelled, &Error{Code: "cancelled", Message: msg}, replyTo(nil)), nil
}

func (m *Machine) retry(e RetryRequested) ([]Effect, error) {
	if m.o.Status != Failed && m.o.Status != Expired {
		return []Effect{Reply{Err: ErrNotRetryable}}, nil
	}
	if !e.Deadline.After(e.At) {
		return nil, fmt.Errorf("%w: order %s: retry deadline %s is not after %s", ErrInvalidEvent, m.o.OrderID, e.Deadline, e.At)
	}
	was := m.o.Status
	m.o.Status, m.o.Error, m.o.CompletedAt = Running, nil, nil
	m.o.Deadline = e.Deadline
	m.o.Notification = nil
	m.o.Retries++
	var calls []Effect
	for i := range m.o.Jobs {
		j := &m.o.Jobs[i]
		if j.Status == JobCompleted {
			continue
		}
		if j.Status == JobProcessing && was == Failed && j.Compensation == nil && j.LateCallback == nil {
			continue // still under way at its service (not cancelled): its callback will come
		}
		if c := j.Compensation; c != nil && c.Status == DeliveryPending {
			// Like the webhook above, a compensation still under way belongs
			// to the finished drive and is no longer awaited; left pending, it
			// would be sent again when this drive ends, even if it completes.
			j.Compensation = nil
		}
		if l := j.LateCallback; l != nil && l.Status == JobCompleted {
			// Its result came after the order had finished: use it now.
			j.Status, j.Result, j.Error, j.CompletedAt, j.LateCallback = JobCompleted, l.Result, nil, ptr(l.At), nil
			continue
		}
		// Called out again, it keeps nothing of the last drive: a compensation
		// on record would read as one of this drive (see calloutAccepted).
		j.Status, j.Result, j.Error, j.CompletedAt, j.RetryAt, j.LateCallback, j.Compensation = JobPending, nil, nil, nil, nil, nil, nil
		j.Attempts++
		j.FirstAttempt = j.Attempts
		calls = append(calls, CallOut{Job: ref(j), Attempt: j.Attempts})
	}
	if pending, _ := Tally(m.o.Jobs); pending == 0 { // every job had a late success
		return m.finish(e.At, Completed, nil, replyTo(nil)), nil
	}
	m.changed(e.At)
	effs := make([]Effect, 0, 3+len(calls))
	effs = append(effs, Persist{Version: m.o.Version}, Reply{}, StartTimer{At: m.o.Deadline})
	return append(effs, calls...), nil
}

func (m *Machine) compensated(e CompensationDone) ([]Effect, error) {
	j := m.o.Job(e.JobID)
	if j == nil {
		return nil, fmt.Errorf("%w: %s in order %s", ErrUnknownJob, e.JobID, m.o.OrderID)
	}
	if j.Compensation == nil || j.Compensation.Status != DeliveryPending {
		return nil, nil
	}
	j.Compensation = delivered(e.At, e.Attempts, e.Err)
	m.changed(e.At)
	return []Effect{Persist{Version: m.o.Version}}, nil
}

func (m *Machine) notified(e NotificationDone) ([]Effect, error) {
	if m.o.Notification == nil || m.o.Notification.Status != DeliveryPending {
		return nil, nil
	}
	m.o.Notification = delivered(e.At, e.Attempts, e.Err)
	m.changed(e.At)
	return []Effect{Persist{Version: m.o.Version}}, nil
}

func delivered(at time.Time, attempts int, err string) *Delivery {
	d := &Delivery{Status: DeliverySucceeded, Attempts: attempts, At: ptr(at), Error: err}
	if err != "" {
		d.Status = DeliveryFailed
	}
	return d
}

func (m *Machine) outcome(j *Job, dup bool) Outcome {
	return Outcome{OrderID: m.o.OrderID, JobID: j.JobID, JobStatus: j.Status, OrderStatus: m.o.Status, Duplicate: dup}
}

// Tally counts the jobs that are not done yet and those that failed: the
// fan-in. An order is complete when pending is 0 and failed is 0.
func Tally(jobs []Job) (pending, failed int) {
	for i := range jobs {
		switch jobs[i].Status {
		case JobCompleted:
		case JobFailed:
			failed++
		default:
			pending++
		}
	}
	return pending, failed
}

func ref(j *Job) JobRef {
	return JobRef{JobID: j.JobID, Type: j.Type, Endpoint: j.Endpoint, CancelEndpoint: j.CancelEndpoint, Timeout: j.Timeout}
}

func ptr(t time.Time) *time.Time { return &t }

func errorJSON(code, msg string) json.RawMessage {
	b, err := json.Marshal(Error{Code: code, Message: msg})
	if err != nil {
		panic(err) // two strings always marshal
	}
	return b
}

// Resume is Restore for a Machine that was already live: the caller rolls
// back to its last stored snapshot after a failed Persist (contract step 5),
// and the effects of that snapshot have been carried out. No Activated is needed.
func Resume(o Order, p Policy) (*Machine, error) {
	m, err := Restore(o, p)
	if err != nil {
		return nil, err
	}
	m.live = true
	return m, nil
}
