package order_test

import (
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
	}
	panic(fmt.Sprintf("eventTime: unknown event %T", e))
}

// checkStep returns what is wrong with the effects effs of a successful Step
// of e that took the order from before to after, or "" if nothing is. These
// are the rules every Step keeps, whatever the event:
//   - at most one Persist, and it comes first, before any Reply, CallOut,
//     RetryCallOut, StartTimer or Notify;
//   - a Persist carries the next version (one more than before), which is
//     the version of the new state, and the new state's updatedAt is the
//     event's time; something other than version and updatedAt changed;
//   - without a Persist, nothing changed at all;
//   - a Notify comes last, exactly when a running order reaches a terminal
//     status, and carries that status;
//   - callouts and timers leave only from a running order, and a callout
//     names the job's current attempt of a job that is still pending.
func checkStep(e order.Event, before, after order.Order, effs []order.Effect) string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	persisted, notified := false, 0
	for i, eff := range effs {
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
		case order.Reply:
		default:
			bad("unknown effect %T", eff)
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
	finished := before.Status == order.Running && after.Status.Terminal()
	switch {
	case finished && notified != 1:
		bad("order went %v → %v with %d Notify", before.Status, after.Status, notified)
	case !finished && notified != 0:
		bad("Notify while order went %v → %v", before.Status, after.Status)
	}
	if before.Status.Terminal() && before.Status != 0 && after.Status != before.Status {
		bad("a finished order changed status %v → %v", before.Status, after.Status)
	}
	return strings.Join(problems, "; ")
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
	case ref != (order.JobRef{JobID: j.JobID, Type: j.Type, Endpoint: j.Endpoint, Timeout: j.Timeout}):
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
	m := order.New(p)
	step(t, m, created())
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
