package order_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/fanflow/fanflow/order"
)

// shell plays the order's actor for whole scenarios, with no goroutines: it
// steps events (each checked by step), keeps every effect in log, and keeps
// the last persisted snapshot in stored, as a store would. crash replaces
// the Machine by one restored from stored.
type shell struct {
	t      testing.TB
	p      order.Policy
	m      *order.Machine
	log    []order.Effect
	stored order.Order
	// redrives are the indexes in log of the effects of each retry that
	// set the order running again: a new drive, which may call out again.
	redrives []int
}

func newShell(t testing.TB, p order.Policy) *shell {
	return &shell{t: t, p: p, m: order.New(p)}
}

// step steps e and returns its effects; a Persist among them is "stored".
func (s *shell) step(e order.Event) []order.Effect {
	s.t.Helper()
	effs := step(s.t, s.m, e)
	if len(effs) > 0 {
		if _, ok := effs[0].(order.Persist); ok {
			s.stored = s.m.Snapshot()
			if _, retried := e.(order.RetryRequested); retried {
				s.redrives = append(s.redrives, len(s.log))
			}
		}
	}
	s.log = append(s.log, effs...)
	return effs
}

// stepLosingPersist steps e as if its Persist failed: the effects are
// dropped and the Machine is restored from the last stored snapshot
// (the package's contract, step 5).
func (s *shell) stepLosingPersist(e order.Event) {
	s.t.Helper()
	effs := step(s.t, s.m, e)
	if len(effs) == 0 {
		s.t.Fatalf("%T: no effects, so no Persist to lose", e)
	}
	if _, ok := effs[0].(order.Persist); !ok {
		s.t.Fatalf("%T: first effect %T, not Persist", e, effs[0])
	}
	s.crash()
}

// resume replaces the Machine by one resumed (live, no Activated needed)
// from the last stored snapshot, as the actor does after a failed Persist.
func (s *shell) resume() {
	s.t.Helper()
	m, err := order.Resume(s.stored, s.p)
	if err != nil {
		s.t.Fatalf("Resume: %v", err)
	}
	s.m = m
}

// crash replaces the Machine by one restored from the last stored snapshot.
func (s *shell) crash() {
	s.t.Helper()
	m, err := order.Restore(s.stored, s.p)
	if err != nil {
		s.t.Fatalf("Restore: %v", err)
	}
	s.m = m
}

// callouts returns the CallOut and RetryCallOut effects of effs by job id,
// as attempt numbers.
func callouts(effs []order.Effect) map[string][]int {
	calls := map[string][]int{}
	for _, e := range effs {
		switch e := e.(type) {
		case order.CallOut:
			calls[e.Job.JobID] = append(calls[e.Job.JobID], e.Attempt)
		case order.RetryCallOut:
			calls[e.Job.JobID] = append(calls[e.Job.JobID], e.Attempt)
		}
	}
	return calls
}

// checkLog checks the whole effect log of a scenario: Persist versions run
// 1, 2, 3, … with no gap, the Notifies logged are exactly want (one per
// drive: the first, and one after each retry), and after a Notify nothing
// calls out or starts a timer until a retry begins a new drive.
func (s *shell) checkLog(want ...order.Status) {
	s.t.Helper()
	var next uint64 = 1
	var got []order.Status
	finished, redrives := false, s.redrives
	for i, e := range s.log {
		if len(redrives) > 0 && redrives[0] == i {
			finished, redrives = false, redrives[1:]
		}
		switch e := e.(type) {
		case order.Persist:
			if e.Version != next {
				s.t.Errorf("effect %d: Persist{%d}, want version %d", i, e.Version, next)
			}
			next = e.Version + 1
		case order.Notify:
			if finished {
				s.t.Errorf("effect %d: a second Notify{%v} in one drive", i, e.Status)
			}
			finished = true
			got = append(got, e.Status)
		case order.CallOut, order.RetryCallOut, order.StartTimer:
			if finished {
				s.t.Errorf("effect %d: %T%+v after Notify", i, e, e)
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		s.t.Errorf("Notify statuses %v, want %v", got, want)
	}
	if v := s.m.View().Version; v != next-1 {
		s.t.Errorf("order version %d, last Persist %d", v, next-1)
	}
}

// replies returns the Replies in effs.
func replies(effs []order.Effect) []order.Reply {
	var rs []order.Reply
	for _, e := range effs {
		if r, ok := e.(order.Reply); ok {
			rs = append(rs, r)
		}
	}
	return rs
}

// wantReply checks that effs hold exactly one Reply and that it is want.
func wantReply(t testing.TB, effs []order.Effect, want order.Reply) {
	t.Helper()
	rs := replies(effs)
	if len(rs) != 1 || rs[0] != want {
		t.Errorf("replies %+v, want [%+v]", rs, want)
	}
}

func TestScenario_threeJobsCompleteWithOneNotify(t *testing.T) {
	s := newShell(t, order.Policy{})
	calls := callouts(s.step(created()))
	for i, id := range jobIDs {
		if fmt.Sprint(calls[id]) != "[1]" {
			t.Fatalf("job %s called out %v, want attempt 1 once", id, calls[id])
		}
		s.step(accepted(i, 1, time.Duration(i+1)*time.Second))
	}
	// The callbacks come back in another order than the callouts left.
	for n, i := range []int{1, 2, 0} {
		effs := s.step(callback(i, time.Duration(10+n)*time.Second))
		status := order.Running
		if n == 2 {
			status = order.Completed
		}
		wantReply(t, effs, order.Reply{Outcome: outcome(i, order.JobCompleted, status, false)})
	}
	o := s.m.Snapshot()
	wantFinished(t, o, order.Completed, at(12*time.Second), "")
	wantOrder(t, o, order.Completed, 7, at(12*time.Second))
	for i := range jobIDs {
		j := wantJob(t, o, i, order.JobCompleted, 1)
		if want := fmt.Sprintf(`{"n":%d}`, i); string(j.Result) != want || j.Error != nil {
			t.Errorf("job %s result %s error %s, want %s", j.JobID, j.Result, j.Error, want)
		}
	}
	if c := o.Job(jobIDs[2]).CompletedAt; c == nil || !c.Equal(at(11*time.Second)) {
		t.Errorf("job-c completedAt %v", c)
	}

	// After completion every input is absorbed: no second Notify.
	wantReply(t, s.step(callback(0, time.Minute)), order.Reply{Outcome: outcome(0, order.JobCompleted, order.Completed, true)})
	wantEffects(t, s.step(order.DeadlinePassed{At: deadline}), nil)
	wantEffects(t, s.step(accepted(1, 1, time.Minute)), nil)
	wantEffects(t, s.step(failed(1, 1, false, time.Minute)), nil)
	s.checkLog(order.Completed)
}

func TestScenario_callbacksBeforeAcceptsComplete(t *testing.T) {
	s := newShell(t, order.Policy{})
	s.step(created())
	for i := range jobIDs {
		s.step(callback(i, time.Duration(i+1)*time.Second))
	}
	for i := range jobIDs {
		wantEffects(t, s.step(accepted(i, 1, 10*time.Second)), nil)
	}
	wantFinished(t, s.m.Snapshot(), order.Completed, at(3*time.Second), "")
	s.checkLog(order.Completed)
}

func TestScenario_failedCallbackFailsOrderAndRefusesTheRest(t *testing.T) {
	s := newShell(t, order.Policy{})
	s.step(created())
	for i := range jobIDs {
		s.step(accepted(i, 1, time.Second))
	}
	s.step(callback(0, 2*time.Second))
	wantReply(t, s.step(callbackFailed(1, 3*time.Second)), order.Reply{Outcome: outcome(1, order.JobFailed, order.Failed, false)})
	wantReply(t, s.step(callback(2, 4*time.Second)),
		order.Reply{Outcome: outcome(2, order.JobProcessing, order.Failed, false), Err: order.ErrOrderFinished})
	wantReply(t, s.step(callback(0, 5*time.Second)), order.Reply{Outcome: outcome(0, order.JobCompleted, order.Failed, true)})
	wantEffects(t, s.step(order.DeadlinePassed{At: deadline}), nil)

	o := s.m.Snapshot()
	wantFinished(t, o, order.Failed, at(3*time.Second), "job_failed")
	wantJob(t, o, 0, order.JobCompleted, 1)
	wantJob(t, o, 1, order.JobFailed, 1)
	if j := wantJob(t, o, 2, order.JobProcessing, 1); j.LateCallback == nil || !j.LateCallback.At.Equal(at(4*time.Second)) {
		t.Errorf("late callback of job-c not recorded: %+v", j.LateCallback)
	}
	s.checkLog(order.Failed)
}

func TestScenario_rejectedCalloutFailsOrder(t *testing.T) {
	s := newShell(t, order.Policy{})
	s.step(created())
	s.step(accepted(0, 1, time.Second))
	wantEffects(t, s.step(failed(1, 1, false, time.Second)), []order.Effect{order.Persist{Version: 3}, order.Notify{Status: order.Failed}})
	// A late acceptance is recorded (the job is under way at its service);
	// a late failure changes nothing.
	wantEffects(t, s.step(accepted(2, 1, 2*time.Second)), []order.Effect{order.Persist{Version: 4}})
	wantEffects(t, s.step(failed(2, 1, true, 2*time.Second)), nil)
	o := s.m.Snapshot()
	wantFinished(t, o, order.Failed, at(time.Second), "job_failed")
	wantJob(t, o, 2, order.JobProcessing, 1)
	s.checkLog(order.Failed)
}

// retryUntilExhausted fails every callout of job-b (retryable) at the time
// the Machine asks for it and returns the attempts that were called out.
func retryUntilExhausted(t *testing.T, s *shell) []int {
	t.Helper()
	var attempts []int
	s.step(created())
	s.step(accepted(0, 1, 0))
	s.step(accepted(2, 1, 0))
	now, attempt := time.Duration(0), 1
	for range 100 {
		attempts = append(attempts, attempt)
		effs := s.step(failed(1, attempt, true, now))
		if s.m.Status() != order.Running {
			return attempts
		}
		if len(effs) != 2 {
			t.Fatalf("attempt %d failed: effects %s, want Persist and RetryCallOut", attempt, fmtEffects(effs))
		}
		r, ok := effs[1].(order.RetryCallOut)
		if !ok || r.Attempt != attempt+1 || r.Job != jobRef(1) {
			t.Fatalf("attempt %d failed: effects %s", attempt, fmtEffects(effs))
		}
		if want := at(now).Add(s.p.Backoff(r.Attempt)); !r.At.Equal(want) {
			t.Errorf("retry %d at %v, want %v", r.Attempt, r.At, want)
		}
		now, attempt = r.At.Sub(t0), r.Attempt
	}
	t.Fatalf("still running after %d attempts", len(attempts))
	return nil
}

func TestScenario_retriesExhaustedFailsOrder(t *testing.T) {
	for _, c := range []struct {
		name string
		p    order.Policy
		n    int
		want string
	}{
		{"MaxAttempts 3", order.Policy{MaxAttempts: 3, BackoffBase: time.Second, BackoffMax: time.Minute}, 3, "[1 2 3]"},
		{"default policy: 5 attempts", order.Policy{}, 5, "[1 2 3 4 5]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newShell(t, c.p)
			if got := fmt.Sprint(retryUntilExhausted(t, s)); got != c.want {
				t.Errorf("attempts %s, want %s", got, c.want)
			}
			o := s.m.Snapshot()
			wantFinished(t, o, order.Failed, *o.CompletedAt, "job_failed")
			j := wantJob(t, o, 1, order.JobFailed, c.n)
			wantErrorJSON(t, j.Error, "callout_failed", fmt.Sprintf("after %d attempt(s)", c.n))
			s.checkLog(order.Failed)
		})
	}
}

func TestScenario_retryThenAcceptedCompletes(t *testing.T) {
	s := newShell(t, order.Policy{MaxAttempts: 3})
	s.step(created())
	s.step(failed(0, 1, true, time.Second))
	s.step(failed(0, 2, true, 2*time.Second))
	s.step(accepted(0, 3, 3*time.Second))
	wantEffects(t, s.step(failed(0, 3, false, 3*time.Second)), nil) // after the accept: stale
	for i := range jobIDs {
		s.step(callback(i, time.Duration(4+i)*time.Second))
	}
	o := s.m.Snapshot()
	wantFinished(t, o, order.Completed, at(6*time.Second), "")
	wantJob(t, o, 0, order.JobCompleted, 3)
	s.checkLog(order.Completed)
}

func TestScenario_deadlineExpiresOrder(t *testing.T) {
	s := newShell(t, order.Policy{})
	effs := s.step(created())
	if st, ok := effs[2].(order.StartTimer); !ok || !st.At.Equal(deadline) {
		t.Fatalf("Created: effect 2 is %T%+v, want StartTimer at the deadline", effs[2], effs[2])
	}
	for i := range jobIDs {
		s.step(accepted(i, 1, time.Second))
	}
	s.step(callback(0, time.Minute))
	s.step(callback(1, 2*time.Minute))
	wantEffects(t, s.step(order.DeadlinePassed{At: deadline.Add(-time.Millisecond)}), nil)
	wantEffects(t, s.step(order.DeadlinePassed{At: deadline}), []order.Effect{order.Persist{Version: 7}, order.Notify{Status: order.Expired}})
	wantReply(t, s.step(callback(2, 10*time.Minute)),
		order.Reply{Outcome: outcome(2, order.JobProcessing, order.Expired, false), Err: order.ErrOrderFinished})
	o := s.m.Snapshot()
	wantFinished(t, o, order.Expired, deadline, "deadline_exceeded")
	wantJob(t, o, 1, order.JobCompleted, 1)
	s.checkLog(order.Expired)
}

func TestScenario_crashAndRecoveryCompletes(t *testing.T) {
	s := newShell(t, order.Policy{})
	s.step(created())
	s.step(accepted(0, 1, time.Second))
	s.step(callback(0, 2*time.Second))
	s.step(failed(1, 1, true, 3*time.Second)) // retry of job-b due at 3.1s
	s.crash()

	effs := s.step(order.Activated{At: at(time.Minute)})
	wantEffects(t, effs, []order.Effect{order.Persist{Version: 5}, order.StartTimer{At: deadline},
		order.RetryCallOut{Job: jobRef(1), Attempt: 2, At: at(3100 * time.Millisecond)}, order.CallOut{Job: jobRef(2), Attempt: 2}})
	s.step(accepted(1, 2, time.Minute))
	s.step(accepted(2, 2, time.Minute))
	wantReply(t, s.step(callback(0, time.Minute)), order.Reply{Outcome: outcome(0, order.JobCompleted, order.Running, true)})
	s.step(callback(1, 2*time.Minute))
	s.crash()
	s.step(order.Activated{At: at(3 * time.Minute)})
	s.step(callback(2, 4*time.Minute))
	o := s.m.Snapshot()
	wantFinished(t, o, order.Completed, at(4*time.Minute), "")
	wantJob(t, o, 1, order.JobCompleted, 2)
	wantJob(t, o, 2, order.JobCompleted, 2)
	s.checkLog(order.Completed)
}

func TestScenario_lostPersistIsNeverAcknowledged(t *testing.T) {
	s := newShell(t, order.Policy{})
	s.step(created())
	s.step(callback(0, time.Second))
	s.stepLosingPersist(callback(1, 2*time.Second)) // the store failed: no 200 was sent
	s.step(order.Activated{At: at(3 * time.Second)})
	if j := s.m.View().Job(jobIDs[1]); j.Status == order.JobCompleted {
		t.Fatal("a callback whose Persist failed is still in memory")
	}
	// The sender retries; it must not be told "duplicate".
	wantReply(t, s.step(callback(1, 4*time.Second)), order.Reply{Outcome: outcome(1, order.JobCompleted, order.Running, false)})
	s.stepLosingPersist(callback(2, 5*time.Second)) // the last one: no Notify either
	s.step(order.Activated{At: at(6 * time.Second)})
	wantReply(t, s.step(callback(2, 7*time.Second)), order.Reply{Outcome: outcome(2, order.JobCompleted, order.Completed, false)})
	wantFinished(t, s.m.Snapshot(), order.Completed, at(7*time.Second), "")
	s.checkLog(order.Completed)
}

func TestScenario_lostPersistThenResumeRetriesTheCallback(t *testing.T) {
	s := newShell(t, order.Policy{})
	s.step(created())
	s.step(accepted(0, 1, time.Second))
	effs := step(t, s.m, callback(0, 2*time.Second)) // its Persist fails: nothing leaves
	if len(effs) == 0 {
		t.Fatal("callback had no effects")
	}
	s.resume()
	if j := s.m.View().Job(jobIDs[0]); j.Status != order.JobProcessing {
		t.Fatalf("after Resume job-a is %v, want processing (the stored state)", j.Status)
	}
	wantReply(t, s.step(callback(0, 3*time.Second)), order.Reply{Outcome: outcome(0, order.JobCompleted, order.Running, false)})
	s.step(callback(1, 4*time.Second))
	s.step(callback(2, 5*time.Second))
	wantFinished(t, s.m.Snapshot(), order.Completed, at(5*time.Second), "")
	s.checkLog(order.Completed)
}

// failEveryAttempt fails (retryably) each callout of job from attempt on, at
// the time the Machine asks for it, starting at now, until the order stops
// running. It returns the attempts that failed and the time of the last.
func failEveryAttempt(t *testing.T, s *shell, job, attempt int, now time.Duration) ([]int, time.Duration) {
	t.Helper()
	var attempts []int
	for range 100 {
		attempts = append(attempts, attempt)
		effs := s.step(failed(job, attempt, true, now))
		if s.m.Status() != order.Running {
			return attempts, now
		}
		r, ok := effs[len(effs)-1].(order.RetryCallOut)
		if !ok || r.Attempt != attempt+1 || r.Job.JobID != jobIDs[job] {
			t.Fatalf("attempt %d failed: effects %s, want a RetryCallOut of attempt %d", attempt, fmtEffects(effs), attempt+1)
		}
		now, attempt = r.At.Sub(t0), r.Attempt
	}
	t.Fatalf("still running after %d attempts", len(attempts))
	return nil, 0
}

// wantSettled checks Machine.Settled.
func (s *shell) wantSettled(want bool) {
	s.t.Helper()
	if got := s.m.Settled(); got != want {
		s.t.Errorf("Settled() = %v, want %v (order %v, notification %s)", got, want, s.m.Status(), fmtDelivery(s.m.View().Notification))
	}
}

func TestScenario_cancelMidFlightCompensatesAndSettles(t *testing.T) {
	s := newShell(t, order.Policy{})
	s.step(compensable())
	for i := range jobIDs {
		s.step(accepted(i, 1, time.Second))
	}
	s.step(callback(1, 5*time.Second))
	wantEffects(t, s.step(cancel(10*time.Second)), []order.Effect{order.Persist{Version: 6}, order.Reply{},
		order.Compensate{Job: cancelRef(0)}, order.Deliver{URL: notifyURL}, order.Notify{Status: order.Cancelled}})
	s.wantSettled(false)
	// The cancelled job calls back anyway: refused, and kept for audit.
	wantReply(t, s.step(callback(0, 11*time.Second)),
		order.Reply{Outcome: outcome(0, order.JobProcessing, order.Cancelled, false), Err: order.ErrOrderFinished})
	wantReply(t, s.step(cancel(11*time.Second)), order.Reply{Err: order.ErrOrderFinished})

	// A restart before the compensation reported sends what is pending again.
	s.crash()
	wantEffects(t, s.step(order.Activated{At: at(12 * time.Second)}),
		[]order.Effect{order.Compensate{Job: cancelRef(0)}, order.Deliver{URL: notifyURL}})
	wantEffects(t, s.step(compensated(0, 2, "", 13*time.Second)), []order.Effect{order.Persist{Version: 8}})
	s.wantSettled(false) // the webhook is still under way
	wantEffects(t, s.step(compensated(0, 3, "", 14*time.Second)), nil)
	wantEffects(t, s.step(notified(1, "", 15*time.Second)), []order.Effect{order.Persist{Version: 9}})
	s.wantSettled(true)
	s.crash()
	wantEffects(t, s.step(order.Activated{At: at(16 * time.Second)}), nil)
	s.wantSettled(true)

	o := s.m.Snapshot()
	wantFinished(t, o, order.Cancelled, at(10*time.Second), "cancelled")
	wantCompensations(t, o, delivery(2, "", 13*time.Second), nil, nil)
	wantNotification(t, o, delivery(1, "", 15*time.Second))
	if j := o.Job(jobIDs[0]); j.LateCallback == nil || j.Status != order.JobProcessing {
		t.Errorf("job-a after its late callback: %+v", *j)
	}
	s.checkLog(order.Cancelled)
}

func TestScenario_lostPersistOfCancelIsNotAcknowledged(t *testing.T) {
	s := newShell(t, order.Policy{})
	s.step(compensable())
	s.step(accepted(0, 1, time.Second))
	s.stepLosingPersist(cancel(2 * time.Second)) // no 200, no compensation, no webhook left
	s.step(order.Activated{At: at(3 * time.Second)})
	if s.m.Status() != order.Running {
		t.Fatalf("a cancel whose Persist failed left the order %v", s.m.Status())
	}
	// The client asks again.
	wantEffects(t, s.step(cancel(4*time.Second)), []order.Effect{order.Persist{Version: 4}, order.Reply{},
		order.Compensate{Job: cancelRef(0)}, order.Deliver{URL: notifyURL}, order.Notify{Status: order.Cancelled}})
	s.checkLog(order.Cancelled)
}

func TestScenario_expiredThenRetriedCompletes(t *testing.T) {
	s := newShell(t, order.Policy{})
	s.step(compensable())
	s.step(accepted(0, 1, time.Second))
	s.step(callback(1, 2*time.Second))
	s.step(failed(2, 1, true, 3*time.Second)) // its retry is never answered
	wantEffects(t, s.step(order.DeadlinePassed{At: deadline}), []order.Effect{order.Persist{Version: 5},
		order.Compensate{Job: cancelRef(0)}, order.Deliver{URL: notifyURL}, order.Notify{Status: order.Expired}})
	s.step(compensated(0, 1, "", deadline.Sub(t0)+time.Second))
	s.step(notified(1, "", deadline.Sub(t0)+2*time.Second))
	s.wantSettled(true)

	wantEffects(t, s.step(retry(10*time.Minute)), []order.Effect{order.Persist{Version: 8}, order.Reply{},
		order.StartTimer{At: at(19 * time.Minute)}, order.CallOut{Job: cancelRef(0), Attempt: 2}, order.CallOut{Job: cancelRef(2), Attempt: 3}})
	s.wantSettled(false)
	// What is left of the first drive is stale.
	wantEffects(t, s.step(failed(2, 2, true, 10*time.Minute+time.Second)), nil)
	wantReply(t, s.step(callback(1, 10*time.Minute+time.Second)),
		order.Reply{Outcome: outcome(1, order.JobCompleted, order.Running, true)})

	s.step(accepted(0, 2, 11*time.Minute))
	s.step(accepted(2, 3, 11*time.Minute))
	s.step(callback(0, 12*time.Minute))
	wantEffects(t, s.step(callback(2, 13*time.Minute)), []order.Effect{order.Persist{Version: 12},
		order.Reply{Outcome: outcome(2, order.JobCompleted, order.Completed, false)},
		order.Deliver{URL: notifyURL}, order.Notify{Status: order.Completed}})
	s.wantSettled(false)
	s.step(notified(1, "", 14*time.Minute))
	s.wantSettled(true)

	o := s.m.Snapshot()
	wantFinished(t, o, order.Completed, at(13*time.Minute), "")
	if o.Retries != 1 || !o.Deadline.Equal(at(19*time.Minute)) {
		t.Errorf("retries %d deadline %v", o.Retries, o.Deadline)
	}
	for i, want := range []struct{ attempts, first int }{{2, 2}, {1, 0}, {3, 3}} {
		if j := wantJob(t, o, i, order.JobCompleted, want.attempts); j.FirstAttempt != want.first {
			t.Errorf("job %s firstAttempt %d, want %d", j.JobID, j.FirstAttempt, want.first)
		}
	}
	wantCompensations(t, o, nil, nil, nil) // job-a's was of the first drive
	wantNotification(t, o, delivery(1, "", 14*time.Minute))
	s.checkLog(order.Expired, order.Completed)
}

func TestScenario_failedThenRetriedFailsAfterMaxAttemptsMore(t *testing.T) {
	s := newShell(t, order.Policy{MaxAttempts: 3, BackoffBase: time.Second, BackoffMax: time.Minute})
	s.step(compensable())
	s.step(accepted(0, 1, 0))
	s.step(accepted(2, 1, 0))
	attempts, now := failEveryAttempt(t, s, 1, 1, time.Second)
	if fmt.Sprint(attempts) != "[1 2 3]" || s.m.Status() != order.Failed {
		t.Fatalf("first drive: attempts %v, order %v", attempts, s.m.Status())
	}
	wantCompensations(t, s.m.Snapshot(), pendingDelivery, nil, nil)
	s.step(compensated(0, 1, "", now+time.Second))

	// job-a was cancelled at its service and is called out again; job-c,
	// with no cancel endpoint, is still under way there and keeps waiting.
	now += time.Minute
	wantEffects(t, s.step(retry(now)), []order.Effect{order.Persist{Version: 8}, order.Reply{},
		order.StartTimer{At: at(now + 9*time.Minute)}, order.CallOut{Job: cancelRef(0), Attempt: 2},
		order.CallOut{Job: cancelRef(1), Attempt: 4}})
	s.step(accepted(0, 2, now))
	attempts, now = failEveryAttempt(t, s, 1, 4, now+time.Second)
	if fmt.Sprint(attempts) != "[4 5 6]" {
		t.Errorf("second drive: attempts %v, want [4 5 6]", attempts)
	}

	o := s.m.Snapshot()
	wantFinished(t, o, order.Failed, at(now), "job_failed")
	j := wantJob(t, o, 1, order.JobFailed, 6)
	if j.FirstAttempt != 4 {
		t.Errorf("job-b firstAttempt %d, want 4", j.FirstAttempt)
	}
	wantErrorJSON(t, j.Error, "callout_failed", "after 6 attempt(s)")
	wantJob(t, o, 2, order.JobProcessing, 1)
	// job-a was accepted again, so it is compensated again.
	wantCompensations(t, o, pendingDelivery, nil, nil)
	wantNotification(t, o, pendingDelivery)
	s.checkLog(order.Failed, order.Failed)
}

func TestScenario_retryUsesLateCallback(t *testing.T) {
	s := newShell(t, order.Policy{})
	s.step(compensable())
	for i := range jobIDs {
		s.step(accepted(i, 1, time.Second))
	}
	s.step(callback(0, 2*time.Second))
	wantEffects(t, s.step(order.DeadlinePassed{At: deadline}), []order.Effect{order.Persist{Version: 6},
		order.Compensate{Job: cancelRef(1)}, order.Deliver{URL: notifyURL}, order.Notify{Status: order.Expired}})
	// After the deadline job-c completes and job-b fails: both are refused
	// and recorded.
	wantReply(t, s.step(callback(2, 10*time.Minute)),
		order.Reply{Outcome: outcome(2, order.JobProcessing, order.Expired, false), Err: order.ErrOrderFinished})
	wantReply(t, s.step(callbackFailed(1, 10*time.Minute+time.Second)),
		order.Reply{Outcome: outcome(1, order.JobProcessing, order.Expired, false), Err: order.ErrOrderFinished})
	s.step(compensated(1, 1, "404 Not Found", 10*time.Minute+2*time.Second))

	// Only job-b is called out again: job-c's late result is used.
	wantEffects(t, s.step(retry(11*time.Minute)), []order.Effect{order.Persist{Version: 10}, order.Reply{},
		order.StartTimer{At: at(20 * time.Minute)}, order.CallOut{Job: cancelRef(1), Attempt: 2}})
	j := wantJob(t, s.m.Snapshot(), 2, order.JobCompleted, 1)
	if string(j.Result) != `{"n":2}` || !j.CompletedAt.Equal(at(10*time.Minute)) || j.LateCallback != nil {
		t.Errorf("job-c after the retry: %+v", *j)
	}
	wantReply(t, s.step(callback(2, 11*time.Minute+time.Second)),
		order.Reply{Outcome: outcome(2, order.JobCompleted, order.Running, true)})
	s.step(accepted(1, 2, 11*time.Minute+2*time.Second))
	wantEffects(t, s.step(callback(1, 12*time.Minute)), []order.Effect{order.Persist{Version: 12},
		order.Reply{Outcome: outcome(1, order.JobCompleted, order.Completed, false)},
		order.Deliver{URL: notifyURL}, order.Notify{Status: order.Completed}})
	s.step(notified(1, "", 13*time.Minute))
	s.wantSettled(true)

	o := s.m.Snapshot()
	wantFinished(t, o, order.Completed, at(12*time.Minute), "")
	wantCompensations(t, o, nil, nil, nil)
	s.checkLog(order.Expired, order.Completed)
}

// A retry while a compensation is still under way: the compensation is no
// longer awaited, and when the new drive completes, the job it was for (now
// completed) is not compensated.
func TestScenario_retryWhileCompensatingCompletesWithoutCompensation(t *testing.T) {
	s := newShell(t, order.Policy{})
	s.step(compensable())
	s.step(accepted(0, 1, time.Second))
	wantEffects(t, s.step(order.DeadlinePassed{At: deadline}), []order.Effect{order.Persist{Version: 3},
		order.Compensate{Job: cancelRef(0)}, order.Deliver{URL: notifyURL}, order.Notify{Status: order.Expired}})
	s.step(retry(10 * time.Minute))
	s.step(accepted(0, 2, 10*time.Minute+time.Second))
	s.step(callback(0, 11*time.Minute))
	s.step(callback(1, 11*time.Minute))
	wantEffects(t, s.step(callback(2, 11*time.Minute)), []order.Effect{order.Persist{Version: 8},
		order.Reply{Outcome: outcome(2, order.JobCompleted, order.Completed, false)},
		order.Deliver{URL: notifyURL}, order.Notify{Status: order.Completed}})
	// The first drive's compensation and webhook report late: nothing to record.
	wantEffects(t, s.step(compensated(0, 3, "", 12*time.Minute)), nil)
	s.step(notified(1, "", 12*time.Minute))
	s.wantSettled(true)
	wantCompensations(t, s.m.Snapshot(), nil, nil, nil)
	s.checkLog(order.Expired, order.Completed)
}
