package order_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/fanflow/fanflow/order"
)

// Table tests of the lifecycle beyond one drive: cancellation, compensation
// of accepted jobs, the completion webhook, and the retry of a failed or
// expired order.

// pendingDelivery is a compensation or notification that is under way.
var pendingDelivery = &order.Delivery{Status: order.DeliveryPending}

// delivery is a compensation or notification that ended at d after attempts
// attempts: succeeded when err is empty, else failed with err.
func delivery(attempts int, err string, d time.Duration) *order.Delivery {
	when := at(d)
	s := order.DeliverySucceeded
	if err != "" {
		s = order.DeliveryFailed
	}
	return &order.Delivery{Status: s, Attempts: attempts, At: &when, Error: err}
}

// wantCompensations checks the compensation of every job of o: want[i] is
// that of job i (nil for none).
func wantCompensations(t *testing.T, o order.Order, want ...*order.Delivery) {
	t.Helper()
	for i, w := range want {
		if got := o.Job(jobIDs[i]).Compensation; !reflect.DeepEqual(got, w) {
			t.Errorf("job %s: compensation %s, want %s", jobIDs[i], fmtDelivery(got), fmtDelivery(w))
		}
	}
}

// wantNotification checks the notification of o.
func wantNotification(t *testing.T, o order.Order, want *order.Delivery) {
	t.Helper()
	if !reflect.DeepEqual(o.Notification, want) {
		t.Errorf("notification %s, want %s", fmtDelivery(o.Notification), fmtDelivery(want))
	}
}

func fmtDelivery(d *order.Delivery) string {
	if d == nil {
		return "none"
	}
	b, _ := json.Marshal(d)
	return string(b)
}

// wantRedriven checks that job i of o is pending again in a new drive that
// began with attempt attempts, with nothing left of the last drive's outcome
// (its compensation included).
func wantRedriven(t *testing.T, o order.Order, i, attempts int) {
	t.Helper()
	j := wantJob(t, o, i, order.JobPending, attempts)
	if j.FirstAttempt != attempts {
		t.Errorf("job %s: firstAttempt %d, want %d", j.JobID, j.FirstAttempt, attempts)
	}
	if j.Result != nil || j.Error != nil || j.CompletedAt != nil || j.RetryAt != nil || j.LateCallback != nil || j.Compensation != nil {
		t.Errorf("re-driven job %s keeps its last outcome: %+v", j.JobID, *j)
	}
}

// wantRunningAgain checks the order-level fields of o after a retry.
func wantRunningAgain(t *testing.T, o order.Order, version uint64, when, until time.Time, retries int) {
	t.Helper()
	wantOrder(t, o, order.Running, version, when)
	if o.Error != nil || o.CompletedAt != nil || o.Notification != nil {
		t.Errorf("retried order keeps error %+v completedAt %v notification %s", o.Error, o.CompletedAt, fmtDelivery(o.Notification))
	}
	if !o.Deadline.Equal(until) || o.Retries != retries {
		t.Errorf("deadline %v retries %d, want %v and %d", o.Deadline, o.Retries, until, retries)
	}
}

func TestCreated_keepsWebhookKeyAndCancelEndpoints(t *testing.T) {
	m := order.New(order.Policy{})
	wantEffects(t, step(t, m, compensable()), []order.Effect{
		order.Persist{Version: 1}, order.Reply{}, order.StartTimer{At: deadline},
		order.CallOut{Job: cancelRef(0), Attempt: 1}, order.CallOut{Job: cancelRef(1), Attempt: 1}, order.CallOut{Job: cancelRef(2), Attempt: 1},
	})
	o := m.Snapshot()
	if o.NotifyURL != notifyURL || o.IdempotencyKey != "idem-42" || o.Notification != nil || o.Retries != 0 {
		t.Errorf("order notifyUrl %q idempotencyKey %q notification %s retries %d", o.NotifyURL, o.IdempotencyKey, fmtDelivery(o.Notification), o.Retries)
	}
	for i, j := range o.Jobs {
		if j.CancelEndpoint != cancelEndpoints[i] || j.Compensation != nil || j.FirstAttempt != 0 {
			t.Errorf("job %s: cancelEndpoint %q compensation %s firstAttempt %d", j.JobID, j.CancelEndpoint, fmtDelivery(j.Compensation), j.FirstAttempt)
		}
	}
	if m.Settled() {
		t.Error("a running order is Settled")
	}
}

func TestCancel_finishesRunningOrder(t *testing.T) {
	runCases(t, []stepCase{{
		name:   "nothing accepted: only the webhook",
		create: compensable,
		event:  cancel(5 * time.Second),
		want:   []order.Effect{order.Persist{Version: 2}, order.Reply{}, order.Deliver{URL: notifyURL}, order.Notify{Status: order.Cancelled}},
		check: func(t *testing.T, o order.Order) {
			wantFinished(t, o, order.Cancelled, at(5*time.Second), "cancelled")
			wantOrder(t, o, order.Cancelled, 2, at(5*time.Second))
			if want := "cancelled on request: customer changed their mind"; o.Error.Message != want {
				t.Errorf("error message %q, want %q", o.Error.Message, want)
			}
			wantCompensations(t, o, nil, nil, nil)
			wantNotification(t, o, pendingDelivery)
			for i := range jobIDs {
				wantJob(t, o, i, order.JobPending, 1)
			}
		},
	}, {
		name:   "only accepted jobs with a cancel endpoint are compensated",
		create: compensable,
		before: []order.Event{accepted(0, 1, time.Second), accepted(2, 1, 2*time.Second), accepted(1, 1, 3*time.Second), callback(1, 4*time.Second)},
		event:  cancel(5 * time.Second),
		want: []order.Effect{order.Persist{Version: 6}, order.Reply{}, order.Compensate{Job: cancelRef(0)},
			order.Deliver{URL: notifyURL}, order.Notify{Status: order.Cancelled}},
		check: func(t *testing.T, o order.Order) {
			wantFinished(t, o, order.Cancelled, at(5*time.Second), "cancelled")
			wantJob(t, o, 0, order.JobProcessing, 1)
			wantJob(t, o, 1, order.JobCompleted, 1)
			wantJob(t, o, 2, order.JobProcessing, 1) // accepted, but no cancel endpoint
			wantCompensations(t, o, pendingDelivery, nil, nil)
			wantNotification(t, o, pendingDelivery)
		},
	}, {
		name:   "a job awaiting a retry is not compensated",
		create: compensable,
		before: []order.Event{failed(0, 1, true, time.Second), accepted(1, 1, 2*time.Second)},
		event:  cancel(3 * time.Second),
		want: []order.Effect{order.Persist{Version: 4}, order.Reply{}, order.Compensate{Job: cancelRef(1)},
			order.Deliver{URL: notifyURL}, order.Notify{Status: order.Cancelled}},
		check: func(t *testing.T, o order.Order) {
			wantFinished(t, o, order.Cancelled, at(3*time.Second), "cancelled") // and the retry is dropped
			wantJob(t, o, 0, order.JobPending, 2)
			wantCompensations(t, o, nil, pendingDelivery, nil)
		},
	}, {
		name:   "no webhook, no cancel endpoints",
		before: []order.Event{accepted(0, 1, time.Second)},
		event:  order.CancelRequested{At: at(2 * time.Second)},
		want:   []order.Effect{order.Persist{Version: 3}, order.Reply{}, order.Notify{Status: order.Cancelled}},
		check: func(t *testing.T, o order.Order) {
			wantFinished(t, o, order.Cancelled, at(2*time.Second), "cancelled")
			if o.Error.Message != "cancelled on request" {
				t.Errorf("error message %q without a reason", o.Error.Message)
			}
			wantCompensations(t, o, nil, nil, nil)
			wantNotification(t, o, nil)
		},
	}})
}

// finishedStates are event sequences, stepped after compensable(), that
// leave the order in each terminal status with its webhook pending.
var finishedStates = []struct {
	name   string
	status order.Status
	events []order.Event
}{
	{"completed", order.Completed, []order.Event{callback(0, 1), callback(1, 2), callback(2, 3)}},
	{"failed", order.Failed, []order.Event{accepted(0, 1, 1), callbackFailed(1, 2)}},
	{"expired", order.Expired, []order.Event{accepted(0, 1, 1), order.DeadlinePassed{At: deadline}}},
	{"cancelled", order.Cancelled, []order.Event{accepted(0, 1, 1), cancel(time.Second)}},
}

func TestCancel_finishedOrderIsRefused(t *testing.T) {
	var cases []stepCase
	for _, f := range finishedStates {
		cases = append(cases, stepCase{
			name:   f.name,
			create: compensable,
			before: f.events,
			event:  cancel(deadline.Sub(t0) + time.Minute),
			// Only the refusal: no Persist, and nothing pending is sent again.
			want: []order.Effect{order.Reply{Err: order.ErrOrderFinished}},
			check: func(t *testing.T, o order.Order) {
				if o.Status != f.status {
					t.Errorf("status %v, want %v", o.Status, f.status)
				}
			},
		})
	}
	runCases(t, cases)
}

func TestFinish_compensatesAcceptedJobsAndDelivers(t *testing.T) {
	runCases(t, []stepCase{{
		name:   "callout rejected",
		create: compensable,
		before: []order.Event{accepted(0, 1, time.Second), accepted(2, 1, time.Second)},
		event:  failed(1, 1, false, 2*time.Second),
		want: []order.Effect{order.Persist{Version: 4}, order.Compensate{Job: cancelRef(0)},
			order.Deliver{URL: notifyURL}, order.Notify{Status: order.Failed}},
		check: func(t *testing.T, o order.Order) {
			wantFinished(t, o, order.Failed, at(2*time.Second), "job_failed")
			wantJob(t, o, 1, order.JobFailed, 1) // never accepted: nothing to compensate
			wantCompensations(t, o, pendingDelivery, nil, nil)
			wantNotification(t, o, pendingDelivery)
		},
	}, {
		name:   "retries exhausted",
		policy: order.Policy{MaxAttempts: 2},
		create: compensable,
		before: []order.Event{accepted(0, 1, time.Second), failed(1, 1, true, 2*time.Second)},
		event:  failed(1, 2, true, 3*time.Second),
		want: []order.Effect{order.Persist{Version: 4}, order.Compensate{Job: cancelRef(0)},
			order.Deliver{URL: notifyURL}, order.Notify{Status: order.Failed}},
		check: func(t *testing.T, o order.Order) {
			wantFinished(t, o, order.Failed, at(3*time.Second), "job_failed")
			wantJob(t, o, 1, order.JobFailed, 2)
			wantCompensations(t, o, pendingDelivery, nil, nil)
		},
	}, {
		name:   "failed callback",
		create: compensable,
		before: []order.Event{accepted(0, 1, time.Second), accepted(1, 1, time.Second)},
		event:  callbackFailed(1, 2*time.Second),
		want: []order.Effect{order.Persist{Version: 4}, order.Reply{Outcome: outcome(1, order.JobFailed, order.Failed, false)},
			order.Compensate{Job: cancelRef(0)}, order.Deliver{URL: notifyURL}, order.Notify{Status: order.Failed}},
		check: func(t *testing.T, o order.Order) {
			wantFinished(t, o, order.Failed, at(2*time.Second), "job_failed")
			wantCompensations(t, o, pendingDelivery, nil, nil) // the failed job itself is not
		},
	}, {
		name:   "expiry",
		create: compensable,
		before: []order.Event{accepted(0, 1, time.Second), accepted(1, 1, time.Second), callback(0, 2*time.Second)},
		event:  order.DeadlinePassed{At: deadline},
		want: []order.Effect{order.Persist{Version: 5}, order.Compensate{Job: cancelRef(1)},
			order.Deliver{URL: notifyURL}, order.Notify{Status: order.Expired}},
		check: func(t *testing.T, o order.Order) {
			wantFinished(t, o, order.Expired, deadline, "deadline_exceeded")
			wantCompensations(t, o, nil, pendingDelivery, nil)
			wantNotification(t, o, pendingDelivery)
		},
	}, {
		name:    "expiry on activation",
		create:  compensable,
		before:  []order.Event{accepted(0, 1, time.Second), accepted(1, 1, time.Second)},
		restore: true,
		event:   order.Activated{At: deadline.Add(time.Minute)},
		want: []order.Effect{order.Persist{Version: 4}, order.Compensate{Job: cancelRef(0)}, order.Compensate{Job: cancelRef(1)},
			order.Deliver{URL: notifyURL}, order.Notify{Status: order.Expired}},
		check: func(t *testing.T, o order.Order) {
			wantFinished(t, o, order.Expired, deadline.Add(time.Minute), "deadline_exceeded")
			wantCompensations(t, o, pendingDelivery, pendingDelivery, nil)
		},
	}, {
		name:   "completion compensates nothing but delivers",
		create: compensable,
		before: []order.Event{accepted(0, 1, 1), accepted(1, 1, 1), accepted(2, 1, 1), callback(0, 2), callback(1, 3)},
		event:  callback(2, 4*time.Second),
		want: []order.Effect{order.Persist{Version: 7}, order.Reply{Outcome: outcome(2, order.JobCompleted, order.Completed, false)},
			order.Deliver{URL: notifyURL}, order.Notify{Status: order.Completed}},
		check: func(t *testing.T, o order.Order) {
			wantFinished(t, o, order.Completed, at(4*time.Second), "")
			wantCompensations(t, o, nil, nil, nil)
			wantNotification(t, o, pendingDelivery)
		},
	}})
}

func TestCompensationDone_recordsOutcome(t *testing.T) {
	cancelled := []order.Event{accepted(0, 1, time.Second), accepted(1, 1, time.Second), cancel(2 * time.Second)}
	unchanged := func(version uint64) func(t *testing.T, o order.Order) {
		return func(t *testing.T, o order.Order) {
			if o.Version != version {
				t.Errorf("version %d, want %d", o.Version, version)
			}
		}
	}
	runCases(t, []stepCase{{
		name:   "succeeded",
		create: compensable,
		before: cancelled,
		event:  compensated(0, 1, "", 3*time.Second),
		want:   []order.Effect{order.Persist{Version: 5}},
		check: func(t *testing.T, o order.Order) {
			wantOrder(t, o, order.Cancelled, 5, at(3*time.Second))
			wantFinished(t, o, order.Cancelled, at(2*time.Second), "cancelled")
			wantCompensations(t, o, delivery(1, "", 3*time.Second), pendingDelivery, nil)
			wantNotification(t, o, pendingDelivery)
			wantJob(t, o, 0, order.JobProcessing, 1)
		},
	}, {
		name:   "given up",
		create: compensable,
		before: cancelled,
		event:  compensated(1, 5, "410 Gone", 4*time.Second),
		want:   []order.Effect{order.Persist{Version: 5}},
		check: func(t *testing.T, o order.Order) {
			wantOrder(t, o, order.Cancelled, 5, at(4*time.Second))
			wantCompensations(t, o, pendingDelivery, delivery(5, "410 Gone", 4*time.Second), nil)
		},
	}, {
		name:   "duplicate",
		create: compensable,
		before: append(cancelled[:len(cancelled):len(cancelled)], compensated(0, 1, "", 3*time.Second)),
		event:  compensated(0, 2, "timeout", 4*time.Second),
		check: func(t *testing.T, o order.Order) {
			unchanged(5)(t, o)
			wantCompensations(t, o, delivery(1, "", 3*time.Second), pendingDelivery, nil)
		},
	}, {
		name:   "a job that was not compensated",
		create: compensable,
		before: []order.Event{accepted(2, 1, time.Second), cancel(2 * time.Second)},
		event:  compensated(2, 1, "", 3*time.Second),
		check:  unchanged(3),
	}, {
		name:   "running order",
		create: compensable,
		before: []order.Event{accepted(0, 1, time.Second)},
		event:  compensated(0, 1, "", 3*time.Second),
		check:  unchanged(2),
	}})
	for state, before := range map[string][]order.Event{"running": nil, "cancelled": cancelled} {
		t.Run("unknown job/"+state, func(t *testing.T) {
			m := machineFrom(t, order.Policy{}, compensable(), before...)
			stepErr(t, m, order.CompensationDone{At: at(time.Minute), JobID: "job-x", Attempts: 1}, order.ErrUnknownJob)
		})
	}
}

func TestNotificationDone_recordsOutcome(t *testing.T) {
	cancelled := []order.Event{cancel(2 * time.Second)}
	runCases(t, []stepCase{{
		name:   "succeeded",
		create: compensable,
		before: cancelled,
		event:  notified(2, "", 3*time.Second),
		want:   []order.Effect{order.Persist{Version: 3}},
		check: func(t *testing.T, o order.Order) {
			wantOrder(t, o, order.Cancelled, 3, at(3*time.Second))
			wantNotification(t, o, delivery(2, "", 3*time.Second))
		},
	}, {
		name:   "given up",
		create: compensable,
		before: cancelled,
		event:  notified(8, "connection refused", 3*time.Second),
		want:   []order.Effect{order.Persist{Version: 3}},
		check: func(t *testing.T, o order.Order) {
			wantNotification(t, o, delivery(8, "connection refused", 3*time.Second))
		},
	}, {
		name:   "duplicate",
		create: compensable,
		before: append(cancelled[:1:1], notified(2, "", 3*time.Second)),
		event:  notified(1, "", 4*time.Second),
		check: func(t *testing.T, o order.Order) {
			wantOrder(t, o, order.Cancelled, 3, at(3*time.Second))
			wantNotification(t, o, delivery(2, "", 3*time.Second))
		},
	}, {
		name:   "running order",
		create: compensable,
		event:  notified(1, "", 4*time.Second),
		check:  func(t *testing.T, o order.Order) { wantNotification(t, o, nil) },
	}, {
		name:   "order without a webhook",
		before: cancelled,
		event:  notified(1, "", 4*time.Second),
		check:  func(t *testing.T, o order.Order) { wantNotification(t, o, nil) },
	}})
}

func TestMachine_Settled(t *testing.T) {
	cancelled := []order.Event{accepted(0, 1, time.Second), cancel(2 * time.Second)}
	for _, c := range []struct {
		name   string
		create func() order.Created
		events []order.Event
		want   bool
	}{
		{"running", compensable, nil, false},
		{"running with a job accepted", compensable, []order.Event{accepted(0, 1, time.Second)}, false},
		{"completed, no webhook", created, []order.Event{callback(0, 1), callback(1, 2), callback(2, 3)}, true},
		{"cancelled, nothing to compensate, no webhook", created, cancelled, true},
		{"completed, webhook pending", compensable, []order.Event{callback(0, 1), callback(1, 2), callback(2, 3)}, false},
		{"completed, webhook delivered", compensable, []order.Event{callback(0, 1), callback(1, 2), callback(2, 3), notified(1, "", time.Second)}, true},
		{"cancelled, both pending", compensable, cancelled, false},
		{"cancelled, webhook pending", compensable, append(cancelled[:2:2], compensated(0, 1, "", 3*time.Second)), false},
		{"cancelled, compensation pending", compensable, append(cancelled[:2:2], notified(1, "", 3*time.Second)), false},
		{"cancelled, both done", compensable, append(cancelled[:2:2], compensated(0, 1, "", 3*time.Second), notified(1, "", 3*time.Second)), true},
		{"failed, both given up", compensable, []order.Event{accepted(0, 1, 1), failed(1, 1, false, 2),
			compensated(0, 5, "500", 3*time.Second), notified(5, "500", 3*time.Second)}, true},
		{"retried", compensable, []order.Event{failed(1, 1, false, 1), notified(1, "", 2), retry(time.Minute)}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := machineFrom(t, order.Policy{}, c.create(), c.events...)
			if got := m.Settled(); got != c.want {
				t.Errorf("Settled() = %v, want %v", got, c.want)
			}
			if got := restored(t, m, order.Policy{}).Settled(); got != c.want {
				t.Errorf("restored: Settled() = %v, want %v", got, c.want)
			}
		})
	}
}

func TestActivated_reEmitsWhatIsStillPending(t *testing.T) {
	cancelled := []order.Event{accepted(0, 1, time.Second), accepted(1, 1, time.Second), cancel(2 * time.Second)}
	after := func(events ...order.Event) []order.Event {
		return append(cancelled[:len(cancelled):len(cancelled)], events...)
	}
	version := func(v uint64) func(t *testing.T, o order.Order) {
		return func(t *testing.T, o order.Order) {
			if o.Version != v || o.Status != order.Cancelled {
				t.Errorf("%v order at version %d, want cancelled at %d", o.Status, o.Version, v)
			}
		}
	}
	runCases(t, []stepCase{{
		name:    "compensations and webhook pending",
		create:  compensable,
		before:  cancelled,
		restore: true,
		event:   order.Activated{At: at(time.Minute)},
		want: []order.Effect{order.Compensate{Job: cancelRef(0)}, order.Compensate{Job: cancelRef(1)},
			order.Deliver{URL: notifyURL}},
		check: version(4),
	}, {
		name:    "only the webhook pending",
		create:  compensable,
		before:  after(compensated(0, 1, "", 3*time.Second), compensated(1, 5, "gone", 4*time.Second)),
		restore: true,
		event:   order.Activated{At: at(time.Minute)},
		want:    []order.Effect{order.Deliver{URL: notifyURL}},
		check:   version(6),
	}, {
		name:    "only one compensation pending",
		create:  compensable,
		before:  after(compensated(0, 1, "", 3*time.Second), notified(1, "", 4*time.Second)),
		restore: true,
		event:   order.Activated{At: at(time.Minute)},
		want:    []order.Effect{order.Compensate{Job: cancelRef(1)}},
		check:   version(6),
	}, {
		name:    "settled",
		create:  compensable,
		before:  after(compensated(0, 1, "", 3*time.Second), compensated(1, 1, "", 3*time.Second), notified(1, "", 4*time.Second)),
		restore: true,
		event:   order.Activated{At: at(time.Minute)},
		check:   version(7),
	}, {
		name:    "completed order, webhook pending",
		create:  compensable,
		before:  []order.Event{callback(0, 1), callback(1, 2), callback(2, 3)},
		restore: true,
		event:   order.Activated{At: at(time.Minute)},
		want:    []order.Effect{order.Deliver{URL: notifyURL}},
	}, {
		name:   "a live machine sends nothing again",
		create: compensable,
		before: cancelled,
		event:  order.Activated{At: at(time.Minute)},
		check:  version(4),
	}})
	m := restored(t, machineFrom(t, order.Policy{}, compensable(), cancelled...), order.Policy{})
	step(t, m, order.Activated{At: at(time.Minute)})
	wantEffects(t, step(t, m, order.Activated{At: at(2 * time.Minute)}), nil) // once only
}

func TestRetry_refusedUnlessFailedOrExpired(t *testing.T) {
	cases := []stepCase{{
		name:   "running",
		create: compensable,
		before: []order.Event{accepted(0, 1, time.Second)},
		event:  retry(time.Minute),
		want:   []order.Effect{order.Reply{Err: order.ErrNotRetryable}},
		check:  func(t *testing.T, o order.Order) { wantOrder(t, o, order.Running, 2, at(time.Second)) },
	}}
	for _, f := range finishedStates {
		if f.status == order.Failed || f.status == order.Expired {
			continue
		}
		cases = append(cases, stepCase{
			name:   f.name,
			create: compensable,
			before: f.events,
			event:  retry(deadline.Sub(t0) + time.Minute),
			want:   []order.Effect{order.Reply{Err: order.ErrNotRetryable}},
			check: func(t *testing.T, o order.Order) {
				if o.Status != f.status || o.Retries != 0 {
					t.Errorf("status %v retries %d, want %v and 0", o.Status, o.Retries, f.status)
				}
			},
		})
	}
	runCases(t, cases)
}

func TestRetry_deadlineMustBeAfterTheRequest(t *testing.T) {
	for _, f := range finishedStates {
		if f.status != order.Failed && f.status != order.Expired {
			continue
		}
		now := deadline.Add(time.Minute)
		for name, until := range map[string]time.Time{"equal": now, "before": now.Add(-time.Second), "zero": {}} {
			t.Run(f.name+"/"+name, func(t *testing.T) {
				m := machineFrom(t, order.Policy{}, compensable(), f.events...)
				stepErr(t, m, order.RetryRequested{At: now, Deadline: until}, order.ErrInvalidEvent)
			})
		}
	}
}

func TestRetry_redrivesJobsThatDidNotComplete(t *testing.T) {
	expired := []order.Event{
		accepted(0, 1, time.Second), callback(1, 2*time.Second), failed(2, 1, true, 3*time.Second), order.DeadlinePassed{At: deadline},
		compensated(0, 1, "", deadline.Sub(t0)+time.Second), notified(1, "", deadline.Sub(t0)+2*time.Second),
	}
	runCases(t, []stepCase{{
		name:   "expired order",
		create: compensable,
		before: expired,
		event:  retry(10 * time.Minute),
		want: []order.Effect{order.Persist{Version: 8}, order.Reply{}, order.StartTimer{At: at(19 * time.Minute)},
			order.CallOut{Job: cancelRef(0), Attempt: 2}, order.CallOut{Job: cancelRef(2), Attempt: 3}},
		check: func(t *testing.T, o order.Order) {
			wantRunningAgain(t, o, 8, at(10*time.Minute), at(19*time.Minute), 1)
			wantRedriven(t, o, 0, 2) // its compensation was of the last drive
			wantRedriven(t, o, 2, 3) // its scheduled retry is replaced by the new drive
			j := wantJob(t, o, 1, order.JobCompleted, 1)
			if j.FirstAttempt != 0 || string(j.Result) != `{"n":1}` || !j.CompletedAt.Equal(at(2*time.Second)) {
				t.Errorf("completed job changed: %+v", *j)
			}
		},
	}, {
		name:   "failed by a rejected callout",
		create: compensable,
		before: []order.Event{failed(1, 1, false, time.Second)},
		event:  retry(time.Minute),
		want: []order.Effect{order.Persist{Version: 3}, order.Reply{}, order.StartTimer{At: at(10 * time.Minute)},
			order.CallOut{Job: cancelRef(0), Attempt: 2}, order.CallOut{Job: cancelRef(1), Attempt: 2}, order.CallOut{Job: cancelRef(2), Attempt: 2}},
		check: func(t *testing.T, o order.Order) {
			wantRunningAgain(t, o, 3, at(time.Minute), at(10*time.Minute), 1)
			for i := range jobIDs {
				wantRedriven(t, o, i, 2)
			}
		},
	}, {
		name:   "failed by a callback",
		create: compensable,
		before: []order.Event{accepted(0, 1, time.Second), callback(2, time.Second), callbackFailed(0, 2*time.Second)},
		event:  retry(time.Minute),
		want: []order.Effect{order.Persist{Version: 5}, order.Reply{}, order.StartTimer{At: at(10 * time.Minute)},
			order.CallOut{Job: cancelRef(0), Attempt: 2}, order.CallOut{Job: cancelRef(1), Attempt: 2}},
		check: func(t *testing.T, o order.Order) {
			wantRunningAgain(t, o, 5, at(time.Minute), at(10*time.Minute), 1)
			wantRedriven(t, o, 0, 2)
			wantRedriven(t, o, 1, 2)
			wantJob(t, o, 2, order.JobCompleted, 1)
		},
	}, {
		name:   "a late completed callback completes its job",
		create: compensable,
		before: []order.Event{accepted(2, 1, time.Second), order.DeadlinePassed{At: deadline}, callback(2, 10*time.Minute)},
		event:  retry(11 * time.Minute),
		want: []order.Effect{order.Persist{Version: 5}, order.Reply{}, order.StartTimer{At: at(20 * time.Minute)},
			order.CallOut{Job: cancelRef(0), Attempt: 2}, order.CallOut{Job: cancelRef(1), Attempt: 2}},
		check: func(t *testing.T, o order.Order) {
			wantRunningAgain(t, o, 5, at(11*time.Minute), at(20*time.Minute), 1) // the pending webhook is dropped
			j := wantJob(t, o, 2, order.JobCompleted, 1)
			if string(j.Result) != `{"n":2}` || j.Error != nil || j.CompletedAt == nil || !j.CompletedAt.Equal(at(10*time.Minute)) ||
				j.LateCallback != nil || j.FirstAttempt != 0 {
				t.Errorf("job completed by its late callback: %+v", *j)
			}
		},
	}, {
		name:   "a late failed callback does not",
		create: compensable,
		before: []order.Event{accepted(2, 1, time.Second), order.DeadlinePassed{At: deadline}, callbackFailed(2, 10*time.Minute)},
		event:  retry(11 * time.Minute),
		want: []order.Effect{order.Persist{Version: 5}, order.Reply{}, order.StartTimer{At: at(20 * time.Minute)},
			order.CallOut{Job: cancelRef(0), Attempt: 2}, order.CallOut{Job: cancelRef(1), Attempt: 2}, order.CallOut{Job: cancelRef(2), Attempt: 2}},
		check: func(t *testing.T, o order.Order) {
			wantRunningAgain(t, o, 5, at(11*time.Minute), at(20*time.Minute), 1)
			wantRedriven(t, o, 2, 2)
		},
	}, {
		name:   "nothing left to call: completes at once",
		create: compensable,
		before: []order.Event{callback(0, time.Second), callback(1, 2*time.Second), order.DeadlinePassed{At: deadline}, callback(2, 10*time.Minute)},
		event:  retry(11 * time.Minute),
		want:   []order.Effect{order.Persist{Version: 6}, order.Reply{}, order.Deliver{URL: notifyURL}, order.Notify{Status: order.Completed}},
		check: func(t *testing.T, o order.Order) {
			wantFinished(t, o, order.Completed, at(11*time.Minute), "")
			wantOrder(t, o, order.Completed, 6, at(11*time.Minute))
			if o.Retries != 1 || !o.Deadline.Equal(at(20*time.Minute)) {
				t.Errorf("retries %d deadline %v", o.Retries, o.Deadline)
			}
			wantNotification(t, o, pendingDelivery)
			wantJob(t, o, 2, order.JobCompleted, 1)
		},
	}, {
		name:   "a second retry",
		create: compensable,
		before: []order.Event{failed(1, 1, false, time.Second), retry(time.Minute), failed(1, 2, false, 2*time.Minute)},
		event:  retry(3 * time.Minute),
		want: []order.Effect{order.Persist{Version: 5}, order.Reply{}, order.StartTimer{At: at(12 * time.Minute)},
			order.CallOut{Job: cancelRef(0), Attempt: 3}, order.CallOut{Job: cancelRef(1), Attempt: 3}, order.CallOut{Job: cancelRef(2), Attempt: 3}},
		check: func(t *testing.T, o order.Order) {
			wantRunningAgain(t, o, 5, at(3*time.Minute), at(12*time.Minute), 2)
			for i := range jobIDs {
				wantRedriven(t, o, i, 3)
			}
		},
	}, {
		name:   "a compensation still under way is no longer awaited",
		create: compensable,
		before: []order.Event{accepted(0, 1, time.Second), order.DeadlinePassed{At: deadline}},
		event:  retry(10 * time.Minute),
		want: []order.Effect{order.Persist{Version: 4}, order.Reply{}, order.StartTimer{At: at(19 * time.Minute)},
			order.CallOut{Job: cancelRef(0), Attempt: 2}, order.CallOut{Job: cancelRef(1), Attempt: 2}, order.CallOut{Job: cancelRef(2), Attempt: 2}},
		check: func(t *testing.T, o order.Order) {
			wantRunningAgain(t, o, 4, at(10*time.Minute), at(19*time.Minute), 1)
			wantRedriven(t, o, 0, 2)
			wantCompensations(t, o, nil, nil, nil)
		},
	}})
}

// In a failed order (not an expired one) a job that was accepted and not
// cancelled at its service is still under way there: a retry waits for its
// callback instead of calling it out again.
func TestRetry_failedOrderWaitsForJobsStillUnderWay(t *testing.T) {
	runCases(t, []stepCase{{
		name:   "accepted, no cancel endpoint: keeps waiting",
		create: compensable,
		before: []order.Event{accepted(2, 1, time.Second), failed(1, 1, false, 2*time.Second)},
		event:  retry(time.Minute),
		want: []order.Effect{order.Persist{Version: 4}, order.Reply{}, order.StartTimer{At: at(10 * time.Minute)},
			order.CallOut{Job: cancelRef(0), Attempt: 2}, order.CallOut{Job: cancelRef(1), Attempt: 2}},
		check: func(t *testing.T, o order.Order) {
			wantRunningAgain(t, o, 4, at(time.Minute), at(10*time.Minute), 1)
			if j := wantJob(t, o, 2, order.JobProcessing, 1); j.FirstAttempt != 0 {
				t.Errorf("waiting job has firstAttempt %d", j.FirstAttempt)
			}
		},
	}, {
		name:   "accepted and compensated: called out again",
		create: compensable,
		before: []order.Event{accepted(0, 1, time.Second), failed(1, 1, false, 2*time.Second), compensated(0, 1, "", 3*time.Second)},
		event:  retry(time.Minute),
		want: []order.Effect{order.Persist{Version: 5}, order.Reply{}, order.StartTimer{At: at(10 * time.Minute)},
			order.CallOut{Job: cancelRef(0), Attempt: 2}, order.CallOut{Job: cancelRef(1), Attempt: 2}, order.CallOut{Job: cancelRef(2), Attempt: 2}},
		check: func(t *testing.T, o order.Order) { wantRedriven(t, o, 0, 2) },
	}, {
		name:   "accepted, compensation still under way: called out again",
		create: compensable,
		before: []order.Event{accepted(0, 1, time.Second), failed(1, 1, false, 2*time.Second)},
		event:  retry(time.Minute),
		want: []order.Effect{order.Persist{Version: 4}, order.Reply{}, order.StartTimer{At: at(10 * time.Minute)},
			order.CallOut{Job: cancelRef(0), Attempt: 2}, order.CallOut{Job: cancelRef(1), Attempt: 2}, order.CallOut{Job: cancelRef(2), Attempt: 2}},
		check: func(t *testing.T, o order.Order) { wantRedriven(t, o, 0, 2) },
	}, {
		name:   "accepted, then a late failed callback: called out again",
		create: compensable,
		before: []order.Event{accepted(2, 1, time.Second), failed(1, 1, false, 2*time.Second), callbackFailed(2, 3*time.Second)},
		event:  retry(time.Minute),
		want: []order.Effect{order.Persist{Version: 5}, order.Reply{}, order.StartTimer{At: at(10 * time.Minute)},
			order.CallOut{Job: cancelRef(0), Attempt: 2}, order.CallOut{Job: cancelRef(1), Attempt: 2}, order.CallOut{Job: cancelRef(2), Attempt: 2}},
		check: func(t *testing.T, o order.Order) { wantRedriven(t, o, 2, 2) },
	}, {
		name:   "expired order: an accepted job did not call back in time and is called out again",
		create: compensable,
		before: []order.Event{accepted(2, 1, time.Second), order.DeadlinePassed{At: deadline}},
		event:  retry(10 * time.Minute),
		want: []order.Effect{order.Persist{Version: 4}, order.Reply{}, order.StartTimer{At: at(19 * time.Minute)},
			order.CallOut{Job: cancelRef(0), Attempt: 2}, order.CallOut{Job: cancelRef(1), Attempt: 2}, order.CallOut{Job: cancelRef(2), Attempt: 2}},
		check: func(t *testing.T, o order.Order) { wantRedriven(t, o, 2, 2) },
	}})
}

// A callout accepted after its order finished: the job is under way at its
// service, so it is recorded and, if it can be, compensated.
func TestCallout_acceptedAfterFinishIsCompensated(t *testing.T) {
	expiredTwice := []order.Event{accepted(0, 1, time.Second), order.DeadlinePassed{At: deadline},
		compensated(0, 1, "", 10*time.Minute), retry(11 * time.Minute), order.DeadlinePassed{At: at(20 * time.Minute)}}
	runCases(t, []stepCase{{
		name:   "expired order",
		create: compensable,
		before: []order.Event{order.DeadlinePassed{At: deadline}},
		event:  order.CalloutAccepted{At: deadline.Add(time.Second), JobID: jobIDs[0], Attempt: 1},
		want:   []order.Effect{order.Persist{Version: 3}, order.Compensate{Job: cancelRef(0)}},
		check: func(t *testing.T, o order.Order) {
			wantOrder(t, o, order.Expired, 3, deadline.Add(time.Second))
			wantJob(t, o, 0, order.JobProcessing, 1)
			wantCompensations(t, o, pendingDelivery, nil, nil)
		},
	}, {
		name:   "cancelled order",
		create: compensable,
		before: []order.Event{accepted(0, 1, time.Second), cancel(2 * time.Second)},
		event:  accepted(1, 1, 3*time.Second),
		want:   []order.Effect{order.Persist{Version: 4}, order.Compensate{Job: cancelRef(1)}},
		check:  func(t *testing.T, o order.Order) { wantCompensations(t, o, pendingDelivery, pendingDelivery, nil) },
	}, {
		name:   "no cancel endpoint",
		create: compensable,
		before: []order.Event{cancel(time.Second)},
		event:  accepted(2, 1, 2*time.Second),
		want:   []order.Effect{order.Persist{Version: 3}},
		check: func(t *testing.T, o order.Order) {
			wantJob(t, o, 2, order.JobProcessing, 1)
			wantCompensations(t, o, nil, nil, nil)
		},
	}, {
		name:   "duplicate",
		create: compensable,
		before: []order.Event{cancel(time.Second), accepted(0, 1, 2*time.Second)},
		event:  accepted(0, 1, 3*time.Second),
		check:  func(t *testing.T, o order.Order) { wantOrder(t, o, order.Cancelled, 3, at(2*time.Second)) },
	}, {
		// The compensation of the first drive does not count for the second.
		name:   "in a second drive",
		create: compensable,
		before: expiredTwice,
		event:  accepted(0, 2, 21*time.Minute),
		want:   []order.Effect{order.Persist{Version: 7}, order.Compensate{Job: cancelRef(0)}},
		check: func(t *testing.T, o order.Order) {
			wantJob(t, o, 0, order.JobProcessing, 2)
			wantCompensations(t, o, pendingDelivery, nil, nil)
		},
	}})
}

func TestRetry_budgetCountsFromTheDrivesFirstAttempt(t *testing.T) {
	p := order.Policy{MaxAttempts: 2}
	failedTwice := []order.Event{failed(1, 1, true, time.Second), failed(1, 2, true, 2*time.Second), retry(time.Minute)}
	runCases(t, []stepCase{{
		name:   "the first failure of a new drive is retried",
		policy: p,
		create: compensable,
		before: failedTwice,
		event:  failed(1, 3, true, 61*time.Second),
		want: []order.Effect{order.Persist{Version: 5},
			order.RetryCallOut{Job: cancelRef(1), Attempt: 4, At: at(61*time.Second + p.Backoff(4))}},
		check: func(t *testing.T, o order.Order) {
			j := wantJob(t, o, 1, order.JobPending, 4)
			if j.FirstAttempt != 3 || j.RetryAt == nil {
				t.Errorf("job %+v", *j)
			}
		},
	}, {
		name:   "MaxAttempts failures of a new drive fail it",
		policy: p,
		create: compensable,
		before: append(failedTwice[:3:3], failed(1, 3, true, 61*time.Second)),
		event:  failed(1, 4, true, 62*time.Second),
		want:   []order.Effect{order.Persist{Version: 6}, order.Deliver{URL: notifyURL}, order.Notify{Status: order.Failed}},
		check: func(t *testing.T, o order.Order) {
			wantFinished(t, o, order.Failed, at(62*time.Second), "job_failed")
			wantJob(t, o, 1, order.JobFailed, 4)
		},
	}, {
		name:   "results of the last drive are stale",
		policy: p,
		create: compensable,
		before: failedTwice,
		event:  failed(1, 2, false, 61*time.Second),
		check:  func(t *testing.T, o order.Order) { wantRedriven(t, o, 1, 3) },
	}, {
		name:   "the last drive's timer is early",
		policy: p,
		create: compensable,
		before: failedTwice,
		event:  order.DeadlinePassed{At: deadline},
		check:  func(t *testing.T, o order.Order) { wantOrder(t, o, order.Running, 4, at(time.Minute)) },
	}})
}

func TestSnapshot_copiesDeliveries(t *testing.T) {
	m := machineFrom(t, order.Policy{}, compensable(), accepted(0, 1, time.Second), cancel(2*time.Second),
		compensated(0, 1, "", 3*time.Second), notified(1, "", 4*time.Second))
	want := m.Snapshot()
	s := m.Snapshot()
	s.Jobs[0].Compensation.Status = order.DeliveryFailed
	*s.Jobs[0].Compensation.At = t0
	s.Notification.Error = "changed"
	*s.Notification.At = t0
	if got := m.Snapshot(); !reflect.DeepEqual(got, want) {
		t.Errorf("changing a snapshot's deliveries changed the machine:\n got %+v\nwant %+v", got, want)
	}
}

func TestMachine_Waiting(t *testing.T) {
	allAccepted := []order.Event{accepted(0, 1, 1), accepted(1, 1, 2), accepted(2, 1, 3)}
	for _, c := range []struct {
		name   string
		create func() order.Created
		events []order.Event
		want   bool
	}{
		{"created: every callout under way", created, nil, false},
		{"two of three accepted", created, allAccepted[:2], false},
		{"every callout accepted", created, allAccepted, true},
		{"every callout accepted, one job called back", created, append(allAccepted[:3:3], callback(0, 4)), true},
		{"called back before its callout was accepted, the others accepted", created,
			[]order.Event{callback(0, 1), accepted(1, 1, 2), accepted(2, 1, 3)}, true},
		{"a callout retry is due", created, []order.Event{accepted(0, 1, 1), accepted(1, 1, 2), failed(2, 1, true, 3)}, false},
		{"the retried callout was accepted", created,
			[]order.Event{accepted(0, 1, 1), accepted(1, 1, 2), failed(2, 1, true, 3), accepted(2, 2, 4)}, true},
		{"completed", created, []order.Event{callback(0, 1), callback(1, 2), callback(2, 3)}, false},
		{"cancelled, compensation pending", compensable, append(allAccepted[:3:3], cancel(4)), false},
		{"expired", created, append(allAccepted[:3:3], order.DeadlinePassed{At: deadline}), false},
		{"retried, its callouts under way", compensable, []order.Event{failed(1, 1, false, 1), notified(1, "", 2), retry(time.Minute)}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := machineFrom(t, order.Policy{}, c.create(), c.events...)
			if got := m.Waiting(); got != c.want {
				t.Errorf("Waiting() = %v, want %v", got, c.want)
			}
			if got := restored(t, m, order.Policy{}).Waiting(); got != c.want {
				t.Errorf("restored: Waiting() = %v, want %v", got, c.want)
			}
		})
	}
}
