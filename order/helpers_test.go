package order_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fanflow/fanflow/order"
)

// Every test runs on a logical clock: t0 plus an offset. Nothing reads the
// real clock.
var (
	t0       = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)
	deadline = t0.Add(9 * time.Minute)
)

// at returns the logical time d after t0.
func at(d time.Duration) time.Time { return t0.Add(d) }

const orderID = "order-1"

var jobIDs = []string{"job-a", "job-b", "job-c"}

// jobRef is the JobRef of job i of the order made by created.
func jobRef(i int) order.JobRef {
	s := order.DefaultJobs()[i]
	return order.JobRef{JobID: jobIDs[i], Type: s.Type, Endpoint: s.Endpoint, Timeout: s.Timeout}
}

// notifyURL is the completion webhook of the order made by compensable.
const notifyURL = "https://hooks.example.com/orders"

// cancelEndpoints are the cancel endpoints of the jobs of the order made by
// compensable: job-c has none.
var cancelEndpoints = []string{"/v1/batchJobA/cancel", "/v1/batchJobB/cancel", ""}

// cancelRef is the JobRef of job i of the order made by compensable.
func cancelRef(i int) order.JobRef {
	r := jobRef(i)
	r.CancelEndpoint = cancelEndpoints[i]
	return r
}

// compensable is created() with a completion webhook, an idempotency key and
// a cancel endpoint for job-a and job-b.
func compensable() order.Created {
	c := created()
	c.NotifyURL = notifyURL
	c.IdempotencyKey = "idem-42"
	for i := range c.Jobs {
		c.Jobs[i].Spec.CancelEndpoint = cancelEndpoints[i]
	}
	return c
}

// created is the Created event of a three-job order (the seed's job types).
func created() order.Created {
	specs := order.DefaultJobs()
	jobs := make([]order.NewJob, len(specs))
	for i, s := range specs {
		jobs[i] = order.NewJob{JobID: jobIDs[i], Spec: s}
	}
	return order.Created{At: t0, OrderID: orderID, Parameters: json.RawMessage(`{"customer":"c-42"}`),
		Jobs: jobs, Deadline: deadline}
}

// Short constructors for the events tests step most often.
func cancel(d time.Duration) order.CancelRequested {
	return order.CancelRequested{At: at(d), Reason: "customer changed their mind"}
}

// retry re-drives a failed or expired order at d until d + 9 minutes.
func retry(d time.Duration) order.RetryRequested {
	return order.RetryRequested{At: at(d), Deadline: at(d + 9*time.Minute)}
}

func compensated(job int, attempts int, err string, d time.Duration) order.CompensationDone {
	return order.CompensationDone{At: at(d), JobID: jobIDs[job], Attempts: attempts, Err: err}
}

func notified(attempts int, err string, d time.Duration) order.NotificationDone {
	return order.NotificationDone{At: at(d), Attempts: attempts, Err: err}
}

func accepted(job int, attempt int, d time.Duration) order.CalloutAccepted {
	return order.CalloutAccepted{At: at(d), JobID: jobIDs[job], Attempt: attempt}
}

func failed(job int, attempt int, retryable bool, d time.Duration) order.CalloutFailed {
	return order.CalloutFailed{At: at(d), JobID: jobIDs[job], Attempt: attempt, Retryable: retryable, Err: "503 Service Unavailable"}
}

func callback(job int, d time.Duration) order.CallbackReceived {
	return order.CallbackReceived{At: at(d), JobID: jobIDs[job], Result: json.RawMessage(fmt.Sprintf(`{"n":%d}`, job))}
}

func callbackFailed(job int, d time.Duration) order.CallbackReceived {
	return order.CallbackReceived{At: at(d), JobID: jobIDs[job], Failed: true, Error: json.RawMessage(`{"code":"boom"}`)}
}

// outcome is the Outcome of a callback for job i.
func outcome(job int, js order.JobStatus, s order.Status, dup bool) order.Outcome {
	return order.Outcome{OrderID: orderID, JobID: jobIDs[job], JobStatus: js, OrderStatus: s, Duplicate: dup}
}

// eventTime returns the At of e.
func eventTime(e order.Event) time.Time {
	switch e := e.(type) {
	case order.Created:
		return e.At
	case order.Activated:
		return e.At
	case order.CalloutAccepted:
		return e.At
	case order.CalloutFailed:
		return e.At
	case order.CallbackReceived:
		return e.At
	case order.DeadlinePassed:
		return e.At
	case order.CancelRequested:
		return e.At
	case order.RetryRequested:
		return e.At
	case order.CompensationDone:
		return e.At
	case order.NotificationDone:
		return e.At
	}
	panic(fmt.Sprintf("eventTime: unknown event %T", e))
}

// checkStep returns what is wrong with the effects effs of a successful Step
// of e that took the order from before to after, or "" if nothing is. These
// are the rules every Step keeps, whatever the event:
//   - effects come in this order: at most one Persist, at most one Reply,
//     StartTimer, callouts, Compensate, Deliver, Notify;
//   - a Persist carries the next version (one more than before), which is
//     the version of the new state, and the new state's updatedAt is the
//     event's time; something other than version and updatedAt changed;
//   - without a Persist, nothing changed at all;
//   - a Notify comes last, exactly when the order reaches a terminal
//     status it did not have (from running, or by a retry that completes at
//     once), and carries that status;
//   - callouts and timers leave only from a running order, and a callout
//     names the job's current attempt of a job that is still pending;
//   - a Compensate leaves only from a finished order, for a job that was
//     accepted and not completed, has a cancel endpoint and a pending
//     compensation; a Deliver only for the order's pending notification;
//   - a compensation or notification is sent in the Step in which it
//     becomes pending (a Notify starts a new notification), and sent again
//     only by Activated, which then sends every one still pending;
//   - a running order has no compensation or notification pending;
//   - a finished order changes status only by a retry of a failed or
//     expired order, to running or (nothing left to call) completed.
func checkStep(e order.Event, before, after order.Order, effs []order.Effect) string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	persisted, notified, replied, rank := false, 0, 0, 0
	settling := false // a Compensate or Deliver left
	compensating := map[string]bool{}
	delivered := false
	for i, eff := range effs {
		if r := effectRank(eff); r < rank {
			bad("%T at index %d after a later kind of effect", eff, i)
		} else {
			rank = r
		}
		switch eff := eff.(type) {
		case order.Persist:
			if i != 0 {
				bad("Persist at index %d, not first", i)
			}
			if persisted {
				bad("more than one Persist")
			}
			persisted = true
			if eff.Version != before.Version+1 || eff.Version != after.Version {
				bad("Persist{%d}: version before %d, after %d", eff.Version, before.Version, after.Version)
			}
			if msg := jsonMismatch(&after); msg != "" {
				bad("snapshot to persist: %s", msg)
			}
		case order.Notify:
			notified++
			if i != len(effs)-1 {
				bad("Notify at index %d of %d, not last", i, len(effs))
			}
			if eff.Status != after.Status || !eff.Status.Terminal() {
				bad("Notify{%v} but order is %v", eff.Status, after.Status)
			}
		case order.CallOut:
			checkCall(bad, after, eff.Job, eff.Attempt)
		case order.RetryCallOut:
			checkCall(bad, after, eff.Job, eff.Attempt)
			if j := after.Job(eff.Job.JobID); j != nil && (j.RetryAt == nil || !j.RetryAt.Equal(eff.At)) {
				bad("RetryCallOut at %v but job %s has RetryAt %v", eff.At, eff.Job.JobID, j.RetryAt)
			}
		case order.StartTimer:
			if after.Status != order.Running || !eff.At.Equal(after.Deadline) {
				bad("StartTimer{%v} on a %v order with deadline %v", eff.At, after.Status, after.Deadline)
			}
		case order.Compensate:
			settling = true
			id := eff.Job.JobID
			j := after.Job(id)
			switch {
			case compensating[id]:
				bad("job %s compensated twice", id)
			case !after.Status.Terminal():
				bad("Compensate of %s from a %v order", id, after.Status)
			case j == nil:
				bad("Compensate of unknown job %s", id)
			case j.Status != order.JobProcessing || j.CancelEndpoint == "":
				bad("Compensate of %s, which is %v with cancel endpoint %q", id, j.Status, j.CancelEndpoint)
			case j.Compensation == nil || j.Compensation.Status != order.DeliveryPending:
				bad("Compensate of %s whose compensation is %+v", id, j.Compensation)
			case eff.Job != fullRef(j):
				bad("Compensate with ref %+v for job %+v", eff.Job, *j)
			}
			compensating[id] = true
		case order.Deliver:
			settling = true
			switch {
			case delivered:
				bad("more than one Deliver")
			case !after.Status.Terminal():
				bad("Deliver from a %v order", after.Status)
			case eff.URL == "" || eff.URL != after.NotifyURL:
				bad("Deliver{%q} but the order's notifyUrl is %q", eff.URL, after.NotifyURL)
			case after.Notification == nil || after.Notification.Status != order.DeliveryPending:
				bad("Deliver but the notification is %+v", after.Notification)
			}
			delivered = true
		case order.Reply:
			if replied++; replied > 1 {
				bad("more than one Reply")
			}
		default:
			bad("unknown effect %T", eff)
		}
	}
	_, activated := e.(order.Activated)
	resent := activated && settling // Activated sends again what is pending
	for _, j := range after.Jobs {
		was := before.Job(j.JobID)
		wasPending := was != nil && isPending(was.Compensation)
		switch {
		case isPending(j.Compensation) && !compensating[j.JobID] && (!wasPending || resent):
			bad("compensation of %s pending but not sent", j.JobID)
		case compensating[j.JobID] && wasPending && !activated:
			bad("compensation of %s sent again on %T", j.JobID, e)
		}
	}
	// A Notify starts a new notification (a retry drops the last one).
	switch {
	case isPending(after.Notification) && !delivered && (!isPending(before.Notification) || resent || notified > 0):
		bad("notification pending but not delivered")
	case delivered && isPending(before.Notification) && !activated && notified == 0:
		bad("notification delivered again on %T", e)
	}
	if after.Status == order.Running {
		for _, j := range after.Jobs {
			if isPending(j.Compensation) {
				bad("running order with the compensation of %s pending", j.JobID)
			}
		}
		if after.Notification != nil {
			bad("running order with notification %+v", *after.Notification)
		}
	}
	if len(effs) > 0 && !persisted && stateChanged(before, after) {
		bad("state changed without Persist")
	}
	if persisted {
		if !after.UpdatedAt.Equal(eventTime(e)) {
			bad("updatedAt %v, want the event's time %v", after.UpdatedAt, eventTime(e))
		}
		if !stateChanged(before, after) {
			bad("Persist{%d} but nothing but version and updatedAt changed", after.Version)
		}
	} else if !reflect.DeepEqual(before, after) {
		bad("no Persist, yet the order changed:\nbefore %+v\nafter  %+v", before, after)
	}
	finished := after.Status.Terminal() && after.Status != before.Status
	switch {
	case finished && notified != 1:
		bad("order went %v → %v with %d Notify", before.Status, after.Status, notified)
	case !finished && notified != 0:
		bad("Notify while order went %v → %v", before.Status, after.Status)
	}
	if before.Status.Terminal() && before.Status != 0 && after.Status != before.Status {
		_, isRetry := e.(order.RetryRequested)
		retryable := before.Status == order.Failed || before.Status == order.Expired
		if !isRetry || !retryable || (after.Status != order.Running && after.Status != order.Completed) {
			bad("a finished order changed status %v → %v on %T", before.Status, after.Status, e)
		}
	}
	return strings.Join(problems, "; ")
}

// isPending reports whether d is a compensation or notification under way.
func isPending(d *order.Delivery) bool { return d != nil && d.Status == order.DeliveryPending }

// effectRank is the place of an effect's kind among the effects of one Step.
func effectRank(e order.Effect) int {
	switch e.(type) {
	case order.Persist:
		return 0
	case order.Reply:
		return 1
	case order.StartTimer:
		return 2
	case order.CallOut, order.RetryCallOut:
		return 3
	case order.Compensate:
		return 4
	case order.Deliver:
		return 5
	}
	return 6 // Notify, and unknown effects (reported elsewhere)
}

// fullRef is the JobRef that names job j.
func fullRef(j *order.Job) order.JobRef {
	return order.JobRef{JobID: j.JobID, Type: j.Type, Endpoint: j.Endpoint, CancelEndpoint: j.CancelEndpoint, Timeout: j.Timeout}
}

func checkCall(bad func(string, ...any), after order.Order, ref order.JobRef, attempt int) {
	j := after.Job(ref.JobID)
	switch {
	case after.Status != order.Running:
		bad("callout of %s from a %v order", ref.JobID, after.Status)
	case j == nil:
		bad("callout of unknown job %s", ref.JobID)
	case j.Status != order.JobPending:
		bad("callout of %s which is %v", ref.JobID, j.Status)
	case attempt != j.Attempts:
		bad("callout of %s attempt %d, job has %d attempts", ref.JobID, attempt, j.Attempts)
	case ref != fullRef(j):
		bad("callout with ref %+v for job %+v", ref, *j)
	}
}

// stateChanged reports whether a and b differ in anything but Version and
// UpdatedAt.
func stateChanged(a, b order.Order) bool {
	a.Version, b.Version = 0, 0
	a.UpdatedAt, b.UpdatedAt = time.Time{}, time.Time{}
	return !reflect.DeepEqual(a, b)
}

// step steps e on m, failing t if Step returns an error or breaks a rule of
// checkStep, and returns the effects.
func step(t testing.TB, m *order.Machine, e order.Event) []order.Effect {
	t.Helper()
	before := m.Snapshot()
	effs, err := m.Step(e)
	if err != nil {
		t.Fatalf("Step(%T%+v) = %v", e, e, err)
	}
	if msg := checkStep(e, before, m.Snapshot(), effs); msg != "" {
		t.Fatalf("Step(%T%+v) -> %v: %s", e, e, fmtEffects(effs), msg)
	}
	return effs
}

// stepErr steps e on m and checks that Step refuses it with want, returns no
// effects and changes nothing.
func stepErr(t testing.TB, m *order.Machine, e order.Event, want error) {
	t.Helper()
	before := m.Snapshot()
	effs, err := m.Step(e)
	if !errors.Is(err, want) {
		t.Errorf("Step(%T%+v) error = %v, want %v", e, e, err, want)
	}
	if effs != nil {
		t.Errorf("Step(%T) refused with effects %v", e, fmtEffects(effs))
	}
	if after := m.Snapshot(); !reflect.DeepEqual(before, after) {
		t.Errorf("refused Step(%T) changed the order:\nbefore %+v\nafter  %+v", e, before, after)
	}
}

// machineAfter returns a Machine with policy p that has stepped created()
// and then events, each checked by step.
func machineAfter(t testing.TB, p order.Policy, events ...order.Event) *order.Machine {
	t.Helper()
	return machineFrom(t, p, created(), events...)
}

// machineFrom is machineAfter with another Created event.
func machineFrom(t testing.TB, p order.Policy, c order.Created, events ...order.Event) *order.Machine {
	t.Helper()
	m := order.New(p)
	step(t, m, c)
	for _, e := range events {
		step(t, m, e)
	}
	return m
}

// restored returns a Machine restored from m's snapshot (not yet Activated).
func restored(t testing.TB, m *order.Machine, p order.Policy) *order.Machine {
	t.Helper()
	r, err := order.Restore(m.Snapshot(), p)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	return r
}

// fmtEffects formats effects for failure messages.
func fmtEffects(effs []order.Effect) string {
	parts := make([]string, len(effs))
	for i, e := range effs {
		parts[i] = fmt.Sprintf("%T%+v", e, e)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// wantEffects fails t unless got equals want exactly (types, values, order).
func wantEffects(t testing.TB, got, want []order.Effect) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("effects\n got %s\nwant %s", fmtEffects(got), fmtEffects(want))
	}
}

// jsonMismatch compares Order.AppendJSON with encoding/json on o: both must
// fail, or both give the same bytes. It returns what differs, or "".
func jsonMismatch(o *order.Order) string {
	want, werr := json.Marshal(o)
	got, gerr := o.AppendJSON(nil)
	switch {
	case (werr == nil) != (gerr == nil):
		return fmt.Sprintf("AppendJSON error %v, json.Marshal error %v", gerr, werr)
	case werr == nil && !bytes.Equal(got, want):
		return fmt.Sprintf("AppendJSON\n  %s\njson.Marshal\n  %s", got, want)
	}
	return ""
}
