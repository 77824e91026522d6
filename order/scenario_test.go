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
// 1, 2, 3, … with no gap, exactly one Notify (with status want) is
// logged, and nothing but Replies follows it.
func (s *shell) checkLog(want order.Status) {
	s.t.Helper()
	var next uint64 = 1
	notified := -1
	for i, e := range s.log {
		switch e := e.(type) {
		case order.Persist:
			if e.Version != next {
				s.t.Errorf("effect %d: Persist{%d}, want version %d", i, e.Version, next)
			}
			next = e.Version + 1
		case order.Notify:
			if notified >= 0 {
				s.t.Errorf("effect %d: a second Notify{%v}", i, e.Status)
			}
			notified = i
			if e.Status != want {
				s.t.Errorf("Notify{%v}, want %v", e.Status, want)
			}
		case order.CallOut, order.RetryCallOut, order.StartTimer:
			if notified >= 0 {
				s.t.Errorf("effect %d: %T%+v after Notify", i, e, e)
			}
		}
	}
	if notified < 0 {
		s.t.Errorf("no Notify, want Notify{%v}", want)
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
