package order_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fanflow/fanflow/order"
)

// stepCase is one row of a (state, event) → (effects, next state) table: the
// state is the order of created() (or of create, when set) after the before
// events (restored from its snapshot when restore is set), the event is
// stepped once, and its effects must equal want exactly; check, when set,
// looks at the resulting order.
type stepCase struct {
	name    string
	policy  order.Policy
	create  func() order.Created
	before  []order.Event
	restore bool
	event   order.Event
	want    []order.Effect
	check   func(t *testing.T, o order.Order)
}

func runCases(t *testing.T, cases []stepCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cr := created()
			if c.create != nil {
				cr = c.create()
			}
			m := machineFrom(t, c.policy, cr, c.before...)
			if c.restore {
				m = restored(t, m, c.policy)
			}
			got := step(t, m, c.event)
			wantEffects(t, got, c.want)
			if c.check != nil {
				c.check(t, m.Snapshot())
			}
		})
	}
}

// wantJob checks the status and attempts of job i of o.
func wantJob(t *testing.T, o order.Order, i int, s order.JobStatus, attempts int) *order.Job {
	t.Helper()
	j := o.Job(jobIDs[i])
	if j == nil {
		t.Fatalf("job %s missing", jobIDs[i])
	}
	if j.Status != s || j.Attempts != attempts {
		t.Errorf("job %s: status %v attempts %d, want %v and %d", j.JobID, j.Status, j.Attempts, s, attempts)
	}
	return j
}

// wantOrder checks the status, version and updatedAt of o.
func wantOrder(t *testing.T, o order.Order, s order.Status, version uint64, updated time.Time) {
	t.Helper()
	if o.Status != s || o.Version != version || !o.UpdatedAt.Equal(updated) {
		t.Errorf("order: status %v version %d updatedAt %v, want %v, %d, %v", o.Status, o.Version, o.UpdatedAt, s, version, updated)
	}
}

// wantFinished checks the terminal fields of o: status, completedAt and the
// error code ("" for none).
func wantFinished(t *testing.T, o order.Order, s order.Status, when time.Time, code string) {
	t.Helper()
	if o.Status != s {
		t.Errorf("order status %v, want %v", o.Status, s)
	}
	if o.CompletedAt == nil || !o.CompletedAt.Equal(when) {
		t.Errorf("order completedAt %v, want %v", o.CompletedAt, when)
	}
	switch {
	case code == "" && o.Error != nil:
		t.Errorf("order error %+v, want none", *o.Error)
	case code != "" && (o.Error == nil || o.Error.Code != code || o.Error.Message == ""):
		t.Errorf("order error %+v, want code %q and a message", o.Error, code)
	}
	for _, j := range o.Jobs {
		if j.RetryAt != nil {
			t.Errorf("finished order keeps a retry of %s at %v", j.JobID, *j.RetryAt)
		}
	}
}

// wantErrorJSON checks that raw is an Error with the code and a message
// containing each of parts.
func wantErrorJSON(t *testing.T, raw json.RawMessage, code string, parts ...string) {
	t.Helper()
	var e order.Error
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("error %s: %v", raw, err)
	}
	if e.Code != code {
		t.Errorf("error code %q, want %q (%s)", e.Code, code, raw)
	}
	for _, p := range parts {
		if !strings.Contains(e.Message, p) {
			t.Errorf("error message %q lacks %q", e.Message, p)
		}
	}
}

func TestCreated_startsOrderAndFansOut(t *testing.T) {
	m := order.New(order.Policy{})
	got := step(t, m, created())
	wantEffects(t, got, []order.Effect{
		order.Persist{Version: 1}, order.Reply{}, order.StartTimer{At: deadline},
		order.CallOut{Job: jobRef(0), Attempt: 1}, order.CallOut{Job: jobRef(1), Attempt: 1}, order.CallOut{Job: jobRef(2), Attempt: 1},
	})
	want := order.Order{Schema: order.SchemaVersion, OrderID: orderID, Status: order.Running,
		Parameters: json.RawMessage(`{"customer":"c-42"}`), CreatedAt: t0, UpdatedAt: t0, Deadline: deadline, Version: 1}
	for i, s := range order.DefaultJobs() {
		want.Jobs = append(want.Jobs, order.Job{JobID: jobIDs[i], Type: s.Type, Endpoint: s.Endpoint, Timeout: s.Timeout,
			Status: order.JobPending, Attempts: 1})
	}
	if o := m.Snapshot(); !reflect.DeepEqual(o, want) {
		t.Errorf("order after Created\n got %+v\nwant %+v", o, want)
	}
	if m.Status() != order.Running {
		t.Errorf("Status() = %v, want running", m.Status())
	}
}

func TestCreated_withoutParametersStoresEmptyObject(t *testing.T) {
	c := created()
	c.Parameters = nil
	m := order.New(order.Policy{})
	step(t, m, c)
	if got := string(m.View().Parameters); got != "{}" {
		t.Errorf("parameters = %q, want {}", got)
	}
}

func TestCreated_rejectsBadInput(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(c *order.Created)
	}{
		{"no order id", func(c *order.Created) { c.OrderID = "" }},
		{"no jobs", func(c *order.Created) { c.Jobs = nil }},
		{"no time", func(c *order.Created) { c.At = time.Time{} }},
		{"no deadline", func(c *order.Created) { c.Deadline = time.Time{} }},
		{"empty job id", func(c *order.Created) { c.Jobs[1].JobID = "" }},
		{"repeated job id", func(c *order.Created) { c.Jobs[2].JobID = c.Jobs[0].JobID }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := order.New(order.Policy{})
			bad := created()
			c.mutate(&bad)
			stepErr(t, m, bad, order.ErrInvalidEvent)
			if m.Status() != 0 {
				t.Errorf("refused Created left status %v", m.Status())
			}
			// The machine is not poisoned: a good Created still starts the order.
			if effs := step(t, m, created()); len(effs) == 0 {
				t.Error("good Created after a bad one has no effects")
			}
		})
	}
	t.Run("second Created", func(t *testing.T) {
		m := machineAfter(t, order.Policy{}, accepted(0, 1, time.Second))
		stepErr(t, m, created(), order.ErrInvalidEvent)
	})
	t.Run("Created on a restored machine", func(t *testing.T) {
		m := restored(t, machineAfter(t, order.Policy{}), order.Policy{})
		stepErr(t, m, created(), order.ErrInvalidEvent)
	})
}

func TestStep_eventsBeforeCreatedAreRefused(t *testing.T) {
	for _, e := range []order.Event{
		order.Activated{At: t0},
		accepted(0, 1, 0),
		failed(0, 1, true, 0),
		callback(0, 0),
		order.DeadlinePassed{At: deadline},
		cancel(0),
		retry(0),
		compensated(0, 1, "", 0),
		notified(1, "", 0),
	} {
		t.Run(reflect.TypeOf(e).Name(), func(t *testing.T) {
			m := order.New(order.Policy{})
			stepErr(t, m, e, order.ErrInvalidEvent)
			if m.Status() != 0 {
				t.Errorf("status %v after a refused event", m.Status())
			}
		})
	}
}

func TestStep_unknownEventIsRefused(t *testing.T) {
	c := created()
	for name, e := range map[string]order.Event{"nil": nil, "pointer": &c} {
		t.Run(name, func(t *testing.T) {
			stepErr(t, machineAfter(t, order.Policy{}), e, order.ErrInvalidEvent)
		})
	}
}

func TestCallback_unknownJobChangesNothing(t *testing.T) {
	events := []order.Event{
		order.CalloutAccepted{At: at(time.Second), JobID: "job-x", Attempt: 1},
		order.CalloutFailed{At: at(time.Second), JobID: "job-x", Attempt: 1, Retryable: true},
		order.CallbackReceived{At: at(time.Second), JobID: "job-x"},
		order.CallbackReceived{At: at(time.Second), JobID: "", Failed: true},
	}
	states := map[string][]order.Event{
		"running":   nil,
		"completed": {callback(0, 1), callback(1, 2), callback(2, 3)},
		"expired":   {order.DeadlinePassed{At: deadline}},
	}
	for state, before := range states {
		for _, e := range events {
			t.Run(state+"/"+reflect.TypeOf(e).Name(), func(t *testing.T) {
				stepErr(t, machineAfter(t, order.Policy{}, before...), e, order.ErrUnknownJob)
			})
		}
	}
}

func TestCallout_acceptedMarksJobProcessing(t *testing.T) {
	runCases(t, []stepCase{{
		name:  "first attempt",
		event: accepted(1, 1, 2*time.Second),
		want:  []order.Effect{order.Persist{Version: 2}},
		check: func(t *testing.T, o order.Order) {
			wantOrder(t, o, order.Running, 2, at(2*time.Second))
			wantJob(t, o, 0, order.JobPending, 1)
			j := wantJob(t, o, 1, order.JobProcessing, 1)
			if j.CompletedAt != nil || j.RetryAt != nil {
				t.Errorf("accepted job has completedAt %v retryAt %v", j.CompletedAt, j.RetryAt)
			}
		},
	}, {
		name:   "retry attempt clears the retry",
		before: []order.Event{failed(1, 1, true, time.Second)},
		event:  accepted(1, 2, 3*time.Second),
		want:   []order.Effect{order.Persist{Version: 3}},
		check: func(t *testing.T, o order.Order) {
			if j := wantJob(t, o, 1, order.JobProcessing, 2); j.RetryAt != nil {
				t.Errorf("retryAt %v after accept", *j.RetryAt)
			}
		},
	}, {
		name:   "duplicate",
		before: []order.Event{accepted(1, 1, time.Second)},
		event:  accepted(1, 1, 2*time.Second),
		want:   nil,
		check: func(t *testing.T, o order.Order) {
			wantOrder(t, o, order.Running, 2, at(time.Second))
			wantJob(t, o, 1, order.JobProcessing, 1)
		},
	}, {
		name:   "after the job called back",
		before: []order.Event{callback(1, time.Second)},
		event:  accepted(1, 1, 2*time.Second),
		want:   nil,
		check:  func(t *testing.T, o order.Order) { wantJob(t, o, 1, order.JobCompleted, 1) },
	}, {
		// The job service did accept it: the job is under way, even if its
		// order will not wait for it (and is compensated if it can be).
		name:   "after the order expired",
		before: []order.Event{order.DeadlinePassed{At: deadline}},
		event:  order.CalloutAccepted{At: deadline.Add(time.Second), JobID: jobIDs[0], Attempt: 1},
		want:   []order.Effect{order.Persist{Version: 3}},
		check:  func(t *testing.T, o order.Order) { wantJob(t, o, 0, order.JobProcessing, 1) },
	}})
}

func TestCallout_retryableFailureSchedulesRetryWithBackoff(t *testing.T) {
	p := order.Policy{MaxAttempts: 5, BackoffBase: time.Second, BackoffMax: 3 * time.Second}
	retryAt := func(i, attempts int, when time.Time) func(t *testing.T, o order.Order) {
		return func(t *testing.T, o order.Order) {
			j := wantJob(t, o, i, order.JobPending, attempts)
			if j.RetryAt == nil || !j.RetryAt.Equal(when) {
				t.Errorf("retryAt %v, want %v", j.RetryAt, when)
			}
			if o.Status != order.Running || o.CompletedAt != nil || o.Error != nil || len(j.Error) != 0 {
				t.Errorf("a retry changed the outcome: %+v", o)
			}
		}
	}
	runCases(t, []stepCase{{
		name:   "first failure waits BackoffBase",
		policy: p,
		event:  failed(2, 1, true, 10*time.Second),
		want:   []order.Effect{order.Persist{Version: 2}, order.RetryCallOut{Job: jobRef(2), Attempt: 2, At: at(11 * time.Second)}},
		check:  retryAt(2, 2, at(11*time.Second)),
	}, {
		name:   "second failure doubles the delay",
		policy: p,
		before: []order.Event{failed(2, 1, true, 10*time.Second)},
		event:  failed(2, 2, true, 12*time.Second),
		want:   []order.Effect{order.Persist{Version: 3}, order.RetryCallOut{Job: jobRef(2), Attempt: 3, At: at(14 * time.Second)}},
		check:  retryAt(2, 3, at(14*time.Second)),
	}, {
		name:   "the delay is capped at BackoffMax",
		policy: p,
		before: []order.Event{failed(2, 1, true, 10*time.Second), failed(2, 2, true, 12*time.Second)},
		event:  failed(2, 3, true, 15*time.Second),
		want:   []order.Effect{order.Persist{Version: 4}, order.RetryCallOut{Job: jobRef(2), Attempt: 4, At: at(18 * time.Second)}},
		check:  retryAt(2, 4, at(18*time.Second)),
	}, {
		name:  "default policy waits 100ms",
		event: failed(0, 1, true, time.Second),
		want:  []order.Effect{order.Persist{Version: 2}, order.RetryCallOut{Job: jobRef(0), Attempt: 2, At: at(1100 * time.Millisecond)}},
		check: retryAt(0, 2, at(1100*time.Millisecond)),
	}})
}

func TestCallout_staleFailureIsIgnored(t *testing.T) {
	unchanged := func(i int, s order.JobStatus, attempts int) func(t *testing.T, o order.Order) {
		return func(t *testing.T, o order.Order) { wantJob(t, o, i, s, attempts) }
	}
	runCases(t, []stepCase{{
		name:   "older attempt after a retry was scheduled",
		before: []order.Event{failed(0, 1, true, time.Second)},
		event:  failed(0, 1, true, 2*time.Second),
		check:  unchanged(0, order.JobPending, 2),
	}, {
		name:   "older non-retryable attempt after a retry was scheduled",
		before: []order.Event{failed(0, 1, true, time.Second)},
		event:  failed(0, 1, false, 2*time.Second),
		check:  unchanged(0, order.JobPending, 2),
	}, {
		name:  "an attempt that was never made",
		event: failed(0, 2, false, time.Second),
		check: unchanged(0, order.JobPending, 1),
	}, {
		name:   "after the callout was accepted",
		before: []order.Event{accepted(0, 1, time.Second)},
		event:  failed(0, 1, false, 2*time.Second),
		check:  unchanged(0, order.JobProcessing, 1),
	}, {
		name:   "after the job called back",
		before: []order.Event{callback(0, time.Second)},
		event:  failed(0, 1, false, 2*time.Second),
		check:  unchanged(0, order.JobCompleted, 1),
	}, {
		name:   "after the order expired",
		before: []order.Event{order.DeadlinePassed{At: deadline}},
		event:  order.CalloutFailed{At: deadline.Add(time.Second), JobID: jobIDs[0], Attempt: 1},
		check: func(t *testing.T, o order.Order) {
			wantJob(t, o, 0, order.JobPending, 1)
			if o.Status != order.Expired {
				t.Errorf("status %v", o.Status)
			}
		},
	}})
}

func TestCallout_nonRetryableFailureFailsOrder(t *testing.T) {
	failedJob := func(i, attempts int, when time.Time) func(t *testing.T, o order.Order) {
		return func(t *testing.T, o order.Order) {
			wantFinished(t, o, order.Failed, when, "job_failed")
			j := wantJob(t, o, i, order.JobFailed, attempts)
			if j.CompletedAt == nil || !j.CompletedAt.Equal(when) {
				t.Errorf("job completedAt %v, want %v", j.CompletedAt, when)
			}
			wantErrorJSON(t, j.Error, "callout_failed", j.Endpoint, "503 Service Unavailable")
			if !strings.Contains(o.Error.Message, j.JobID) {
				t.Errorf("order error %q does not name job %s", o.Error.Message, j.JobID)
			}
		}
	}
	runCases(t, []stepCase{{
		name:  "rejected first attempt",
		event: failed(1, 1, false, 5*time.Second),
		want:  []order.Effect{order.Persist{Version: 2}, order.Notify{Status: order.Failed}},
		check: failedJob(1, 1, at(5*time.Second)),
	}, {
		name:   "rejected retry, other jobs' retries dropped",
		before: []order.Event{failed(0, 1, true, time.Second), failed(1, 1, true, time.Second)},
		event:  failed(1, 2, false, 5*time.Second),
		want:   []order.Effect{order.Persist{Version: 4}, order.Notify{Status: order.Failed}},
		check:  failedJob(1, 2, at(5*time.Second)),
	}, {
		name:   "retryable failure of the last allowed attempt",
		policy: order.Policy{MaxAttempts: 1},
		event:  failed(1, 1, true, 5*time.Second),
		want:   []order.Effect{order.Persist{Version: 2}, order.Notify{Status: order.Failed}},
		check:  failedJob(1, 1, at(5*time.Second)),
	}})
}

func TestCallback_completesJob(t *testing.T) {
	runCases(t, []stepCase{{
		name:   "first of three",
		before: []order.Event{accepted(0, 1, time.Second)},
		event:  callback(0, 7*time.Second),
		want:   []order.Effect{order.Persist{Version: 3}, order.Reply{Outcome: outcome(0, order.JobCompleted, order.Running, false)}},
		check: func(t *testing.T, o order.Order) {
			wantOrder(t, o, order.Running, 3, at(7*time.Second))
			j := wantJob(t, o, 0, order.JobCompleted, 1)
			if string(j.Result) != `{"n":0}` || j.CompletedAt == nil || !j.CompletedAt.Equal(at(7*time.Second)) {
				t.Errorf("job result %s completedAt %v", j.Result, j.CompletedAt)
			}
			if o.CompletedAt != nil {
				t.Errorf("running order has completedAt %v", *o.CompletedAt)
			}
		},
	}, {
		name:   "the last one completes the order",
		before: []order.Event{callback(0, time.Second), callback(1, 2*time.Second)},
		event:  callback(2, 3*time.Second),
		want: []order.Effect{order.Persist{Version: 4}, order.Reply{Outcome: outcome(2, order.JobCompleted, order.Completed, false)},
			order.Notify{Status: order.Completed}},
		check: func(t *testing.T, o order.Order) {
			wantFinished(t, o, order.Completed, at(3*time.Second), "")
			wantOrder(t, o, order.Completed, 4, at(3*time.Second))
		},
	}})
}

func TestCallback_beforeCalloutAcceptedIsAccepted(t *testing.T) {
	runCases(t, []stepCase{{
		name:  "pending job",
		event: callback(1, time.Second),
		want:  []order.Effect{order.Persist{Version: 2}, order.Reply{Outcome: outcome(1, order.JobCompleted, order.Running, false)}},
		check: func(t *testing.T, o order.Order) { wantJob(t, o, 1, order.JobCompleted, 1) },
	}, {
		name:   "pending job with a retry scheduled",
		before: []order.Event{failed(1, 1, true, time.Second)},
		event:  callback(1, 2*time.Second),
		want:   []order.Effect{order.Persist{Version: 3}, order.Reply{Outcome: outcome(1, order.JobCompleted, order.Running, false)}},
		check: func(t *testing.T, o order.Order) {
			if j := wantJob(t, o, 1, order.JobCompleted, 2); j.RetryAt != nil {
				t.Errorf("completed job keeps retryAt %v", *j.RetryAt)
			}
		},
	}, {
		name:   "the late acceptance is then ignored",
		before: []order.Event{callback(1, time.Second)},
		event:  accepted(1, 1, 2*time.Second),
		check:  func(t *testing.T, o order.Order) { wantJob(t, o, 1, order.JobCompleted, 1) },
	}})
}

func TestCallback_duplicateIsAcknowledgedOnce(t *testing.T) {
	runCases(t, []stepCase{{
		name:   "completed job, running order",
		before: []order.Event{callback(0, time.Second)},
		event:  callback(0, 2*time.Second),
		want:   []order.Effect{order.Reply{Outcome: outcome(0, order.JobCompleted, order.Running, true)}},
		check: func(t *testing.T, o order.Order) {
			j := wantJob(t, o, 0, order.JobCompleted, 1)
			if !j.CompletedAt.Equal(at(time.Second)) {
				t.Errorf("duplicate moved completedAt to %v", *j.CompletedAt)
			}
			wantOrder(t, o, order.Running, 2, at(time.Second))
		},
	}, {
		name:   "completed order",
		before: []order.Event{callback(0, 1), callback(1, 2), callback(2, 3)},
		event:  callback(1, 4*time.Second),
		want:   []order.Effect{order.Reply{Outcome: outcome(1, order.JobCompleted, order.Completed, true)}},
		check:  func(t *testing.T, o order.Order) { wantOrder(t, o, order.Completed, 4, at(3)) },
	}, {
		name:   "failed job, failed order",
		before: []order.Event{callbackFailed(2, time.Second)},
		event:  callbackFailed(2, 2*time.Second),
		want:   []order.Effect{order.Reply{Outcome: outcome(2, order.JobFailed, order.Failed, true)}},
		check:  func(t *testing.T, o order.Order) { wantOrder(t, o, order.Failed, 2, at(time.Second)) },
	}})
}

func TestCallback_conflictingStatus(t *testing.T) {
	runCases(t, []stepCase{{
		name:   "failed after completed",
		before: []order.Event{callback(0, time.Second)},
		event:  callbackFailed(0, 2*time.Second),
		want:   []order.Effect{order.Reply{Outcome: outcome(0, order.JobCompleted, order.Running, false), Err: order.ErrJobConflict}},
		check:  func(t *testing.T, o order.Order) { wantJob(t, o, 0, order.JobCompleted, 1) },
	}, {
		name:   "completed after the callout was rejected",
		before: []order.Event{failed(0, 1, false, time.Second)},
		event:  callback(0, 2*time.Second),
		want:   []order.Effect{order.Reply{Outcome: outcome(0, order.JobFailed, order.Failed, false), Err: order.ErrJobConflict}},
		check: func(t *testing.T, o order.Order) {
			if j := wantJob(t, o, 0, order.JobFailed, 1); j.LateCallback != nil || len(j.Result) != 0 {
				t.Errorf("conflicting callback was recorded: %+v", *j)
			}
		},
	}})
}

func TestCallback_failedFailsOrder(t *testing.T) {
	runCases(t, []stepCase{{
		name:   "with an error",
		before: []order.Event{accepted(1, 1, time.Second)},
		event:  callbackFailed(1, 4*time.Second),
		want: []order.Effect{order.Persist{Version: 3}, order.Reply{Outcome: outcome(1, order.JobFailed, order.Failed, false)},
			order.Notify{Status: order.Failed}},
		check: func(t *testing.T, o order.Order) {
			wantFinished(t, o, order.Failed, at(4*time.Second), "job_failed")
			j := wantJob(t, o, 1, order.JobFailed, 1)
			if string(j.Error) != `{"code":"boom"}` || !j.CompletedAt.Equal(at(4*time.Second)) {
				t.Errorf("job error %s completedAt %v", j.Error, j.CompletedAt)
			}
			wantJob(t, o, 0, order.JobPending, 1)
		},
	}, {
		name:  "without an error",
		event: order.CallbackReceived{At: at(time.Second), JobID: jobIDs[0], Failed: true},
		want: []order.Effect{order.Persist{Version: 2}, order.Reply{Outcome: outcome(0, order.JobFailed, order.Failed, false)},
			order.Notify{Status: order.Failed}},
		check: func(t *testing.T, o order.Order) {
			wantErrorJSON(t, wantJob(t, o, 0, order.JobFailed, 1).Error, "job_failed")
		},
	}})
}

func TestCallback_afterExpiryIsRecordedAndRefused(t *testing.T) {
	late := deadline.Add(time.Minute)
	lateCallback := order.CallbackReceived{At: late, JobID: jobIDs[2], Result: json.RawMessage(`"late"`)}
	recorded := func(i int, s order.JobStatus, os order.Status, version uint64) func(t *testing.T, o order.Order) {
		return func(t *testing.T, o order.Order) {
			j := wantJob(t, o, i, s, 1)
			want := order.LateCallback{At: late, Status: order.JobCompleted, Result: json.RawMessage(`"late"`)}
			if j.LateCallback == nil || !reflect.DeepEqual(*j.LateCallback, want) {
				t.Errorf("lateCallback %+v, want %+v", j.LateCallback, want)
			}
			if j.CompletedAt != nil || len(j.Result) != 0 {
				t.Errorf("late callback completed the job: %+v", *j)
			}
			wantOrder(t, o, os, version, late)
		}
	}
	expired := []order.Event{accepted(2, 1, time.Second), order.DeadlinePassed{At: deadline}}
	runCases(t, []stepCase{{
		name:   "expired order",
		before: expired,
		event:  lateCallback,
		want:   []order.Effect{order.Persist{Version: 4}, order.Reply{Outcome: outcome(2, order.JobProcessing, order.Expired, false), Err: order.ErrOrderFinished}},
		check:  recorded(2, order.JobProcessing, order.Expired, 4),
	}, {
		name:   "failed order",
		before: []order.Event{callbackFailed(0, time.Second)},
		event:  lateCallback,
		want:   []order.Effect{order.Persist{Version: 3}, order.Reply{Outcome: outcome(2, order.JobPending, order.Failed, false), Err: order.ErrOrderFinished}},
		check:  recorded(2, order.JobPending, order.Failed, 3),
	}, {
		name:   "a second late callback keeps the first",
		before: append(expired, lateCallback),
		event:  order.CallbackReceived{At: late.Add(time.Second), JobID: jobIDs[2], Failed: true},
		want:   []order.Effect{order.Reply{Outcome: outcome(2, order.JobProcessing, order.Expired, true), Err: order.ErrOrderFinished}},
		check:  recorded(2, order.JobProcessing, order.Expired, 4),
	}})
}

func TestDeadline_earlyTimerIsIgnored(t *testing.T) {
	runCases(t, []stepCase{{
		name:  "a nanosecond early",
		event: order.DeadlinePassed{At: deadline.Add(-time.Nanosecond)},
		check: func(t *testing.T, o order.Order) { wantOrder(t, o, order.Running, 1, t0) },
	}, {
		name:    "restored, before Activated",
		restore: true,
		event:   order.DeadlinePassed{At: t0},
		check:   func(t *testing.T, o order.Order) { wantOrder(t, o, order.Running, 1, t0) },
	}})
}

func TestDeadline_expiresRunningOrder(t *testing.T) {
	runCases(t, []stepCase{{
		name:   "at the deadline",
		before: []order.Event{callback(0, time.Second)},
		event:  order.DeadlinePassed{At: deadline},
		want:   []order.Effect{order.Persist{Version: 3}, order.Notify{Status: order.Expired}},
		check: func(t *testing.T, o order.Order) {
			wantFinished(t, o, order.Expired, deadline, "deadline_exceeded")
			wantJob(t, o, 0, order.JobCompleted, 1)
			wantJob(t, o, 1, order.JobPending, 1)
		},
	}, {
		name:   "late timer, retries dropped",
		before: []order.Event{failed(1, 1, true, time.Second)},
		event:  order.DeadlinePassed{At: deadline.Add(time.Hour)},
		want:   []order.Effect{order.Persist{Version: 3}, order.Notify{Status: order.Expired}},
		check: func(t *testing.T, o order.Order) {
			wantFinished(t, o, order.Expired, deadline.Add(time.Hour), "deadline_exceeded")
		},
	}, {
		name:   "a second timer changes nothing",
		before: []order.Event{order.DeadlinePassed{At: deadline}},
		event:  order.DeadlinePassed{At: deadline.Add(time.Second)},
		check:  func(t *testing.T, o order.Order) { wantFinished(t, o, order.Expired, deadline, "deadline_exceeded") },
	}, {
		name:   "a completed order does not expire",
		before: []order.Event{callback(0, 1), callback(1, 2), callback(2, 3)},
		event:  order.DeadlinePassed{At: deadline},
		check:  func(t *testing.T, o order.Order) { wantFinished(t, o, order.Completed, at(3), "") },
	}})
}

func TestActivated_resendsUnacknowledgedCallouts(t *testing.T) {
	runCases(t, []stepCase{{
		name:    "two of three unacknowledged",
		before:  []order.Event{accepted(1, 1, time.Second)},
		restore: true,
		event:   order.Activated{At: at(time.Minute)},
		want: []order.Effect{order.Persist{Version: 3}, order.StartTimer{At: deadline},
			order.CallOut{Job: jobRef(0), Attempt: 2}, order.CallOut{Job: jobRef(2), Attempt: 2}},
		check: func(t *testing.T, o order.Order) {
			wantOrder(t, o, order.Running, 3, at(time.Minute))
			wantJob(t, o, 0, order.JobPending, 2)
			wantJob(t, o, 1, order.JobProcessing, 1)
			wantJob(t, o, 2, order.JobPending, 2)
		},
	}, {
		name:    "all acknowledged: only the timer",
		before:  []order.Event{accepted(0, 1, 1), callback(1, 2), accepted(2, 1, 3)},
		restore: true,
		event:   order.Activated{At: at(time.Minute)},
		want:    []order.Effect{order.StartTimer{At: deadline}},
		check:   func(t *testing.T, o order.Order) { wantOrder(t, o, order.Running, 4, at(3)) },
	}})
}

func TestActivated_reschedulesPendingRetry(t *testing.T) {
	retryAt := at(time.Second + 100*time.Millisecond)
	runCases(t, []stepCase{{
		name:    "only a retry pending: nothing to persist",
		before:  []order.Event{failed(0, 1, true, time.Second), accepted(1, 1, 2*time.Second), accepted(2, 1, 3*time.Second)},
		restore: true,
		event:   order.Activated{At: at(time.Minute)},
		want:    []order.Effect{order.StartTimer{At: deadline}, order.RetryCallOut{Job: jobRef(0), Attempt: 2, At: retryAt}},
		check: func(t *testing.T, o order.Order) {
			wantOrder(t, o, order.Running, 4, at(3*time.Second))
			wantJob(t, o, 0, order.JobPending, 2)
		},
	}, {
		name:    "a retry and an unacknowledged callout",
		before:  []order.Event{failed(0, 1, true, time.Second), accepted(1, 1, 2*time.Second)},
		restore: true,
		event:   order.Activated{At: at(time.Minute)},
		want: []order.Effect{order.Persist{Version: 4}, order.StartTimer{At: deadline},
			order.RetryCallOut{Job: jobRef(0), Attempt: 2, At: retryAt}, order.CallOut{Job: jobRef(2), Attempt: 2}},
		check: func(t *testing.T, o order.Order) {
			wantJob(t, o, 0, order.JobPending, 2)
			wantJob(t, o, 2, order.JobPending, 2)
		},
	}})
}

func TestActivated_expiresPastDeadline(t *testing.T) {
	runCases(t, []stepCase{{
		name:    "at the deadline",
		before:  []order.Event{accepted(0, 1, time.Second)},
		restore: true,
		event:   order.Activated{At: deadline},
		want:    []order.Effect{order.Persist{Version: 3}, order.Notify{Status: order.Expired}},
		check: func(t *testing.T, o order.Order) {
			wantFinished(t, o, order.Expired, deadline, "deadline_exceeded")
			wantJob(t, o, 1, order.JobPending, 1) // not called out again
		},
	}, {
		name:    "with a retry pending",
		before:  []order.Event{failed(0, 1, true, time.Second)},
		restore: true,
		event:   order.Activated{At: deadline.Add(time.Hour)},
		want:    []order.Effect{order.Persist{Version: 3}, order.Notify{Status: order.Expired}},
		check: func(t *testing.T, o order.Order) {
			wantFinished(t, o, order.Expired, deadline.Add(time.Hour), "deadline_exceeded")
		},
	}})
}

func TestActivated_finishedOrLiveMachineDoesNothing(t *testing.T) {
	runCases(t, []stepCase{{
		name:    "completed order",
		before:  []order.Event{callback(0, 1), callback(1, 2), callback(2, 3)},
		restore: true,
		event:   order.Activated{At: deadline.Add(time.Hour)},
		check:   func(t *testing.T, o order.Order) { wantFinished(t, o, order.Completed, at(3), "") },
	}, {
		name:    "expired order",
		before:  []order.Event{order.DeadlinePassed{At: deadline}},
		restore: true,
		event:   order.Activated{At: deadline.Add(time.Hour)},
		check:   func(t *testing.T, o order.Order) { wantFinished(t, o, order.Expired, deadline, "deadline_exceeded") },
	}, {
		name:  "machine that stepped Created",
		event: order.Activated{At: at(time.Second)},
		check: func(t *testing.T, o order.Order) { wantJob(t, o, 0, order.JobPending, 1) },
	}})
	m := restored(t, machineAfter(t, order.Policy{}), order.Policy{})
	wantEffects(t, step(t, m, order.Activated{At: at(time.Second)}), []order.Effect{order.Persist{Version: 2}, order.StartTimer{At: deadline},
		order.CallOut{Job: jobRef(0), Attempt: 2}, order.CallOut{Job: jobRef(1), Attempt: 2}, order.CallOut{Job: jobRef(2), Attempt: 2}})
	wantEffects(t, step(t, m, order.Activated{At: at(2 * time.Second)}), nil)
	wantJob(t, m.Snapshot(), 0, order.JobPending, 2)
}

func TestPolicy_Backoff(t *testing.T) {
	custom := order.Policy{BackoffBase: time.Second, BackoffMax: 5 * time.Second}
	for _, c := range []struct {
		p    order.Policy
		next int
		want time.Duration
	}{
		{order.Policy{}, 2, 100 * time.Millisecond},
		{order.Policy{}, 3, 200 * time.Millisecond},
		{order.Policy{}, 4, 400 * time.Millisecond},
		{order.Policy{}, 8, 6400 * time.Millisecond},
		{order.Policy{}, 9, 10 * time.Second},
		{order.Policy{}, 1000, 10 * time.Second},
		{custom, 1, time.Second},
		{custom, 2, time.Second},
		{custom, 4, 4 * time.Second},
		{custom, 5, 5 * time.Second},
		{order.Policy{BackoffBase: time.Hour}, 2, 10 * time.Second},
	} {
		if got := c.p.Backoff(c.next); got != c.want {
			t.Errorf("%+v.Backoff(%d) = %v, want %v", c.p, c.next, got, c.want)
		}
	}
}

func TestTally(t *testing.T) {
	jobs := func(ss ...order.JobStatus) []order.Job {
		js := make([]order.Job, len(ss))
		for i, s := range ss {
			js[i].Status = s
		}
		return js
	}
	for _, c := range []struct {
		jobs            []order.Job
		pending, failed int
	}{
		{nil, 0, 0},
		{jobs(order.JobPending, order.JobProcessing, order.JobCompleted), 2, 0},
		{jobs(order.JobCompleted, order.JobCompleted), 0, 0},
		{jobs(order.JobFailed, order.JobProcessing, order.JobFailed), 1, 2},
	} {
		if p, f := order.Tally(c.jobs); p != c.pending || f != c.failed {
			t.Errorf("Tally(%v) = %d, %d; want %d, %d", c.jobs, p, f, c.pending, c.failed)
		}
	}
}

func TestSnapshot_isADeepCopy(t *testing.T) {
	m := machineAfter(t, order.Policy{}, failed(0, 1, true, time.Second), callback(1, 2*time.Second), callbackFailed(2, 3*time.Second),
		order.CallbackReceived{At: at(4 * time.Second), JobID: jobIDs[0]})
	want := m.Snapshot()
	s := m.Snapshot()
	if s.CompletedAt == nil || s.Error == nil || s.Jobs[1].CompletedAt == nil || s.Jobs[0].LateCallback == nil {
		t.Fatalf("setup: snapshot lacks the pointers under test: %+v", s)
	}
	s.Status = order.Running
	s.Jobs[0].Status = order.JobCompleted
	*s.CompletedAt = t0
	s.Error.Code = "changed"
	*s.Jobs[1].CompletedAt = t0
	s.Jobs[0].LateCallback.Status = order.JobFailed
	s.Jobs = append(s.Jobs[:1], s.Jobs[2:]...)
	if got := m.Snapshot(); !reflect.DeepEqual(got, want) {
		t.Errorf("changing a snapshot changed the machine:\n got %+v\nwant %+v", got, want)
	}
	if v := m.View(); !reflect.DeepEqual(*v, want) {
		t.Errorf("View() = %+v, want %+v", *v, want)
	}

	// Restore copies too: the snapshot it was given may change afterwards.
	src := want.Clone()
	r, err := order.Restore(src, order.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	src.Jobs[0].Status = order.JobCompleted
	*src.CompletedAt = t0
	if got := r.Snapshot(); !reflect.DeepEqual(got, want) {
		t.Errorf("changing Restore's input changed the machine:\n got %+v\nwant %+v", got, want)
	}

	// A retry time is copied as well.
	m2 := machineAfter(t, order.Policy{}, failed(0, 1, true, time.Second))
	s2 := m2.Snapshot()
	*s2.Jobs[0].RetryAt = t0
	if got := m2.View().Jobs[0].RetryAt; got == nil || got.Equal(t0) {
		t.Errorf("changing a snapshot's retryAt changed the machine: %v", got)
	}
}
