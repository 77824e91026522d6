package order_test

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/fanflow/fanflow/order"
)

// Fuzz operations: each input byte is one operation. Its low three bits
// choose the kind, the next two the job (mod 3) and the top three a variant.
const (
	opAccept       = iota // CalloutAccepted for the current attempt
	opAcceptOld           // CalloutAccepted for an earlier (or the current) attempt
	opFail                // retryable CalloutFailed for the current attempt
	opFailStale           // retryable CalloutFailed for an earlier or unmade attempt
	opCallback            // CallbackReceived, completed
	opRepeat              // the previous event once more (duplication)
	opRestart             // Restore from the stored snapshot, then Activated
	opEarlyTimer          // DeadlinePassed before the deadline
	maxFuzzOps     = 512
	fuzzMaxAttempt = 4 * maxFuzzOps // more than any input can use: no job fails
)

func op(kind, job, variant int) byte { return byte(kind | job<<3 | variant<<5) }

func FuzzOrderInterleaving(f *testing.F) {
	a, b, c := 0, 1, 2
	seeds := [][]byte{
		{}, // only the final callbacks
		{op(opAccept, a, 0), op(opAccept, b, 0), op(opAccept, c, 0), op(opCallback, a, 0), op(opCallback, b, 0), op(opCallback, c, 0)},
		{op(opCallback, c, 0), op(opCallback, b, 0), op(opAccept, c, 0), op(opAcceptOld, b, 1), op(opRepeat, 0, 0)},
		{op(opFail, a, 0), op(opFail, a, 0), op(opFailStale, a, 0), op(opRepeat, 0, 0), op(opAccept, a, 0), op(opFail, a, 0)},
		{op(opAccept, a, 0), op(opRestart, 0, 0), op(opCallback, a, 0), op(opRepeat, 0, 0), op(opRestart, 0, 0), op(opAccept, b, 0)},
		{op(opFail, b, 0), op(opRestart, 0, 0), op(opFailStale, b, 7), op(opFail, b, 0), op(opRestart, 0, 0), op(opAcceptOld, b, 3)},
		{op(opCallback, a, 0), op(opRepeat, 0, 0), op(opRepeat, 0, 0), op(opEarlyTimer, 0, 0), op(opCallback, b, 0), op(opRepeat, 0, 0)},
		{op(opCallback, a, 0), op(opCallback, b, 0), op(opRestart, 0, 0), op(opRestart, 0, 0), op(opFail, c, 0), op(opEarlyTimer, 0, 5)},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > maxFuzzOps {
			ops = ops[:maxFuzzOps]
		}
		checkInterleaving(t, ops)
	})
}

// checkInterleaving drives one order of three jobs through ops and then a
// completed callback for every job, and checks that, whatever the
// interleaving, duplication and restarts:
//   - Step never fails and every Step keeps the rules of checkStep (Persist
//     first and exactly when something changed, one version per change);
//   - Persist versions strictly increase over the whole run, restarts
//     included, and the store (the last Persist) is never behind memory;
//   - each job gets exactly one non-duplicate Reply, for the callback that
//     completed it, and every other Reply is a duplicate; none is an error;
//   - the order stays running until every job has completed, then ends
//     completed, the same final state every time, with exactly one Notify.
func checkInterleaving(t *testing.T, ops []byte) {
	p := order.Policy{MaxAttempts: fuzzMaxAttempt}
	s := newShell(t, p)
	c := created()
	c.Deadline = t0.Add(24 * time.Hour) // far beyond the run's clock
	now := t0
	var (
		last        order.Event
		lastVersion uint64
		notifies    []order.Notify
		firstReply  = map[string]time.Time{} // job → when it was acknowledged
	)
	apply := func(e order.Event) []order.Effect {
		t.Helper()
		o := s.m.View()
		var jobID string
		var wasDone bool
		if cb, ok := e.(order.CallbackReceived); ok {
			jobID = cb.JobID
			wasDone = o.Job(jobID).Status == order.JobCompleted
		}
		effs := s.step(e)
		for _, eff := range effs {
			switch eff := eff.(type) {
			case order.Persist:
				if eff.Version <= lastVersion {
					t.Fatalf("%T: Persist{%d} after Persist{%d}", e, eff.Version, lastVersion)
				}
				lastVersion = eff.Version
			case order.Notify:
				notifies = append(notifies, eff)
			case order.Reply:
				if _, ok := e.(order.Created); ok {
					continue
				}
				out := eff.Outcome
				switch {
				case jobID == "":
					t.Fatalf("%T%+v answered with a Reply", e, e)
				case eff.Err != nil:
					t.Fatalf("callback of %s refused: %v", jobID, eff.Err)
				case out.OrderID != orderID || out.JobID != jobID || out.JobStatus != order.JobCompleted:
					t.Fatalf("callback of %s answered %+v", jobID, out)
				case out.Duplicate != wasDone:
					t.Fatalf("callback of %s: duplicate %v, but the job was already completed: %v", jobID, out.Duplicate, wasDone)
				case !out.Duplicate:
					if _, seen := firstReply[jobID]; seen {
						t.Fatalf("job %s acknowledged as new twice", jobID)
					}
					firstReply[jobID] = eventTime(e)
				}
			}
		}
		if jobID != "" && len(replies(effs)) != 1 {
			t.Fatalf("callback of %s: %d replies", jobID, len(replies(effs)))
		}
		o = s.m.View()
		pending, failedJobs := order.Tally(o.Jobs)
		if failedJobs != 0 || (o.Status == order.Completed) != (pending == 0) || (o.Status != order.Running && o.Status != order.Completed) {
			t.Fatalf("order %v with %d jobs not done and %d failed", o.Status, pending, failedJobs)
		}
		if !reflect.DeepEqual(*o, s.stored) {
			t.Fatalf("memory ran ahead of the store:\nmemory %+v\nstored %+v", *o, s.stored)
		}
		last = e
		return effs
	}

	apply(c)
	last = nil // a second Created is wrong input, not a duplicate
	for _, b := range ops {
		now = now.Add(time.Second)
		kind, job, variant := int(b&7), int(b>>3&3)%3, int(b>>5)
		id := jobIDs[job]
		attempts := s.m.View().Job(id).Attempts
		pending := s.m.Status() == order.Running && s.m.View().Job(id).Status == order.JobPending
		switch kind {
		case opAccept, opAcceptOld:
			attempt := attempts
			if kind == opAcceptOld {
				attempt = 1 + variant%attempts
			}
			// Any answer 2xx moves a pending job on; later ones change nothing.
			effs := apply(order.CalloutAccepted{At: now, JobID: id, Attempt: attempt})
			if pending != (len(effs) == 1) || (!pending && len(effs) != 0) {
				t.Fatalf("accept of %s attempt %d (pending %v): %s", id, attempt, pending, fmtEffects(effs))
			}
		case opFail:
			// A retryable failure of the current attempt always schedules the next.
			effs := apply(order.CalloutFailed{At: now, JobID: id, Attempt: attempts, Retryable: true, Err: "503"})
			var want []order.Effect
			if pending {
				want = []order.Effect{order.Persist{Version: s.m.View().Version},
					order.RetryCallOut{Job: jobRef(job), Attempt: attempts + 1, At: now.Add(p.Backoff(attempts + 1))}}
			}
			if len(effs) != len(want) || (pending && !reflect.DeepEqual(effs, want)) {
				t.Fatalf("failure of %s attempt %d (pending %v): %s", id, attempts, pending, fmtEffects(effs))
			}
		case opFailStale:
			stale := attempts - 1 - variant%attempts // 0 is an attempt never made
			if variant == 7 {
				stale = attempts + 1 // not made yet
			}
			if effs := apply(order.CalloutFailed{At: now, JobID: id, Attempt: stale, Retryable: true, Err: "timeout"}); len(effs) != 0 {
				t.Fatalf("stale failure of %s attempt %d (current %d): %s", id, stale, attempts, fmtEffects(effs))
			}
		case opCallback:
			apply(callbackAt(job, now))
		case opRepeat:
			if last != nil {
				apply(last)
			}
		case opRestart:
			s.crash()
			last = nil
			apply(order.Activated{At: now})
		case opEarlyTimer:
			if effs := apply(order.DeadlinePassed{At: now.Add(time.Duration(variant) * time.Minute)}); len(effs) != 0 {
				t.Fatalf("early timer: %s", fmtEffects(effs))
			}
		}
	}
	for i := range jobIDs { // every job eventually calls back
		now = now.Add(time.Second)
		apply(callbackAt(i, now))
	}

	o := s.m.Snapshot()
	if o.Status != order.Completed || o.Error != nil || o.CompletedAt == nil || !o.CompletedAt.Equal(o.UpdatedAt) {
		t.Fatalf("final order: status %v error %v completedAt %v updatedAt %v", o.Status, o.Error, o.CompletedAt, o.UpdatedAt)
	}
	if len(notifies) != 1 || notifies[0].Status != order.Completed {
		t.Fatalf("notifies %+v, want exactly one Notify{completed}", notifies)
	}
	if o.Version != lastVersion {
		t.Fatalf("final version %d, last Persist %d", o.Version, lastVersion)
	}
	for i, id := range jobIDs {
		j := o.Job(id)
		when, ok := firstReply[id]
		switch {
		case !ok:
			t.Fatalf("job %s never acknowledged as new", id)
		case j.Status != order.JobCompleted || j.CompletedAt == nil || !j.CompletedAt.Equal(when):
			t.Fatalf("job %s: status %v completedAt %v, acknowledged at %v", id, j.Status, j.CompletedAt, when)
		case string(j.Result) != string(callbackAt(i, now).Result) || j.Error != nil || j.RetryAt != nil || j.LateCallback != nil:
			t.Fatalf("job %s final state %+v", id, *j)
		}
	}
}

// callbackAt is a completed callback of job i at when.
func callbackAt(i int, when time.Time) order.CallbackReceived {
	cb := callback(i, 0)
	cb.At = when
	return cb
}

// Lifecycle fuzz operations: each input byte is one operation. Its low four
// bits choose the kind, the next two the job (mod 3) and the top two a variant.
const (
	lcAccept         = iota // CalloutAccepted of the job's current attempt
	lcAcceptOld             // CalloutAccepted of an earlier (or the current) attempt
	lcFail                  // retryable CalloutFailed of the current attempt
	lcReject                // non-retryable CalloutFailed of the current attempt
	lcCallback              // CallbackReceived, completed
	lcCallbackFailed        // CallbackReceived, failed
	lcCancel                // CancelRequested
	lcRetry                 // RetryRequested; variant 3: its deadline is not after it
	lcCompensated           // CompensationDone; odd variant: given up
	lcNotified              // NotificationDone; odd variant: given up
	lcTimer                 // DeadlinePassed at the deadline (the clock jumps there) or now
	lcEarlyTimer            // DeadlinePassed before the deadline
	lcRestart               // Restore from the stored snapshot, then Activated
	lcRepeat                // the previous event once more (duplication)
	lcUnknownJob            // an event naming no job of the order: refused
	lcWait                  // time passes: variant × 20s more
)

func lc(kind, job, variant int) byte { return byte(kind | job<<4 | variant<<6) }

func FuzzOrderLifecycle(f *testing.F) {
	a, b, c := 0, 1, 2
	seeds := [][]byte{
		{}, // only the final cancel and settlement
		// cancel mid-flight, compensation and webhook reported, a restart between
		{lc(lcAccept, a, 0), lc(lcAccept, c, 0), lc(lcCancel, 0, 0), lc(lcRestart, 0, 0), lc(lcCompensated, a, 0), lc(lcNotified, 0, 1)},
		// expire, late callbacks, retry, complete
		{lc(lcAccept, a, 0), lc(lcCallback, b, 0), lc(lcTimer, 0, 0), lc(lcCallback, c, 0), lc(lcRetry, 0, 1), lc(lcAccept, a, 0), lc(lcCallback, a, 0)},
		// retries exhausted, retry, exhausted again
		{lc(lcFail, b, 0), lc(lcFail, b, 0), lc(lcFail, b, 0), lc(lcRetry, 0, 0), lc(lcFail, b, 0), lc(lcFail, b, 0), lc(lcFail, b, 0), lc(lcRetry, 0, 3)},
		// failed with a job under way, retry before the compensation is done, late acceptance
		{lc(lcAccept, a, 0), lc(lcAccept, c, 0), lc(lcCallbackFailed, b, 0), lc(lcRetry, 0, 2), lc(lcReject, b, 0), lc(lcAcceptOld, b, 0), lc(lcCompensated, a, 1)},
		// duplicates, refusals and restarts of a finished order
		{lc(lcCancel, 0, 0), lc(lcRepeat, 0, 0), lc(lcRetry, 0, 0), lc(lcAccept, b, 0), lc(lcRestart, 0, 0), lc(lcRepeat, 0, 0), lc(lcUnknownJob, 0, 1), lc(lcEarlyTimer, 0, 0)},
		// time passes until a restart expires the order
		{lc(lcAccept, a, 0), lc(lcWait, 0, 3), lc(lcWait, 0, 3), lc(lcRestart, 0, 0), lc(lcRetry, 0, 0), lc(lcWait, 0, 3), lc(lcTimer, 0, 0)},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > maxFuzzOps {
			ops = ops[:maxFuzzOps]
		}
		checkLifecycle(t, ops)
	})
}

// checkLifecycle drives one order of three jobs (two with a cancel endpoint;
// with a webhook when ops has an even length) through ops, then cancels it
// if it still runs and reports every compensation and webhook delivery, and
// checks that, whatever the interleaving of cancels, retries, outcomes,
// duplicates and restarts:
//   - every Step keeps the rules of checkStep, and memory never runs ahead
//     of the store;
//   - Persist versions strictly increase over the whole run;
//   - there is at most one Notify per drive (the first drive and each retry),
//     one for each terminal status reached;
//   - a job is completed at most once per drive, and stays completed; it is
//     acknowledged as newly completed at most once;
//   - a compensation starts only for a job that was accepted and is not
//     completed and has a cancel endpoint: when its order fails, expires or
//     is cancelled, or when it is accepted after that (and then always);
//     never when the order completes;
//   - cancel, retry and the outcomes of compensations and webhooks do what
//     they must, or are refused and change nothing;
//   - Settled is true exactly when the order is finished and nothing is
//     pending, and the order always settles in the end.
func checkLifecycle(t *testing.T, ops []byte) {
	p := order.Policy{MaxAttempts: 3, BackoffBase: time.Second, BackoffMax: 4 * time.Second}
	s := newShell(t, p)
	c := compensable()
	if len(ops)%2 == 1 {
		c.NotifyURL, c.IdempotencyKey = "", ""
	}
	c.Deadline = t0.Add(2 * time.Minute)
	now := t0
	var (
		last         order.Event
		lastVersion  uint64
		drive        int
		notifies     []order.Status
		driveNotify  = map[int]int{}
		completedIn  = map[string]int{} // job → drive it completed in
		acknowledged = map[string]bool{}
	)
	apply := func(e order.Event) []order.Effect {
		t.Helper()
		before := s.m.Snapshot()
		effs := s.step(e)
		after := s.m.Snapshot()
		if _, ok := e.(order.RetryRequested); ok && len(effs) > 0 {
			if _, ok := effs[0].(order.Persist); ok {
				drive++
			}
		}
		for _, eff := range effs {
			switch eff := eff.(type) {
			case order.Persist:
				if eff.Version <= lastVersion {
					t.Fatalf("%T: Persist{%d} after Persist{%d}", e, eff.Version, lastVersion)
				}
				lastVersion = eff.Version
			case order.Notify:
				notifies = append(notifies, eff.Status)
				if driveNotify[drive]++; driveNotify[drive] > 1 {
					t.Fatalf("%T: a second Notify{%v} in drive %d", e, eff.Status, drive)
				}
			}
		}
		if !reflect.DeepEqual(after, s.stored) {
			t.Fatalf("memory ran ahead of the store:\nmemory %+v\nstored %+v", after, s.stored)
		}
		if before.Status == 0 {
			last = e
			return effs // Created: checkStep is all there is to check
		}
		checkLifecycleStep(t, e, before, after, effs)
		for i := range after.Jobs {
			j, was := &after.Jobs[i], &before.Jobs[i]
			switch {
			case was.Status == order.JobCompleted && j.Status != order.JobCompleted:
				t.Fatalf("%T: completed job %s became %v", e, j.JobID, j.Status)
			case was.Status != order.JobCompleted && j.Status == order.JobCompleted:
				if d, ok := completedIn[j.JobID]; ok && d == drive {
					t.Fatalf("%T: job %s completed twice in drive %d", e, j.JobID, drive)
				}
				completedIn[j.JobID] = drive
			}
		}
		if cb, ok := e.(order.CallbackReceived); ok {
			rs := replies(effs)
			if len(rs) != 1 {
				t.Fatalf("callback of %s: replies %+v", cb.JobID, rs)
			}
			if r := rs[0]; r.Err == nil && !r.Outcome.Duplicate && !cb.Failed {
				if acknowledged[cb.JobID] {
					t.Fatalf("job %s acknowledged as newly completed twice", cb.JobID)
				}
				acknowledged[cb.JobID] = true
			}
		}
		last = e
		return effs
	}

	apply(c)
	last = nil // a second Created is wrong input, not a duplicate
	for _, b := range ops {
		now = now.Add(time.Second)
		kind, job, variant := int(b&15), int(b>>4&3)%3, int(b>>6)
		id := jobIDs[job]
		o := s.m.View()
		attempts := o.Job(id).Attempts
		switch kind {
		case lcAccept:
			apply(order.CalloutAccepted{At: now, JobID: id, Attempt: attempts})
		case lcAcceptOld:
			apply(order.CalloutAccepted{At: now, JobID: id, Attempt: 1 + variant%attempts})
		case lcFail:
			apply(order.CalloutFailed{At: now, JobID: id, Attempt: attempts, Retryable: true, Err: "503"})
		case lcReject:
			apply(order.CalloutFailed{At: now, JobID: id, Attempt: attempts, Err: "400"})
		case lcCallback:
			apply(callbackAt(job, now))
		case lcCallbackFailed:
			cb := callbackFailed(job, 0)
			cb.At = now
			apply(cb)
		case lcCancel:
			apply(order.CancelRequested{At: now, Reason: []string{"", "fuzz"}[variant%2]})
		case lcRetry:
			if variant == 3 {
				e := order.RetryRequested{At: now, Deadline: now}
				if o.Status == order.Failed || o.Status == order.Expired {
					stepErr(t, s.m, e, order.ErrInvalidEvent)
				} else {
					apply(e)
				}
				continue
			}
			apply(order.RetryRequested{At: now, Deadline: now.Add(time.Duration(variant+1) * 40 * time.Second)})
		case lcCompensated:
			apply(order.CompensationDone{At: now, JobID: id, Attempts: variant + 1, Err: []string{"", "410 Gone"}[variant%2]})
		case lcNotified:
			apply(order.NotificationDone{At: now, Attempts: variant + 1, Err: []string{"", "connection refused"}[variant%2]})
		case lcTimer:
			if now.Before(o.Deadline) {
				now = o.Deadline
			}
			apply(order.DeadlinePassed{At: now})
		case lcEarlyTimer:
			early := now
			if !early.Before(o.Deadline) {
				early = o.Deadline.Add(-time.Nanosecond)
			}
			if effs := apply(order.DeadlinePassed{At: early}); len(effs) != 0 {
				t.Fatalf("early timer: %s", fmtEffects(effs))
			}
		case lcRestart:
			s.crash()
			last = nil
			apply(order.Activated{At: now})
		case lcRepeat:
			if last != nil {
				apply(last)
			}
		case lcUnknownJob:
			if variant%2 == 0 {
				stepErr(t, s.m, order.CompensationDone{At: now, JobID: "job-x", Attempts: 1}, order.ErrUnknownJob)
			} else {
				stepErr(t, s.m, order.CallbackReceived{At: now, JobID: "job-x"}, order.ErrUnknownJob)
			}
		case lcWait:
			now = now.Add(time.Duration(variant) * 20 * time.Second)
		}
	}

	// Settle: cancel a running order, then report every outcome still due.
	now = now.Add(time.Second)
	if s.m.Status() == order.Running {
		apply(order.CancelRequested{At: now})
	}
	for _, j := range s.m.Snapshot().Jobs {
		if isPending(j.Compensation) {
			apply(order.CompensationDone{At: now, JobID: j.JobID, Attempts: 1})
		}
	}
	if isPending(s.m.View().Notification) {
		apply(order.NotificationDone{At: now, Attempts: 1})
	}
	if !s.m.Settled() {
		t.Fatalf("not Settled after every outcome was reported: %+v", s.m.Snapshot())
	}
	s.crash()
	if effs := apply(order.Activated{At: now.Add(time.Second)}); len(effs) != 0 {
		t.Fatalf("Activated on a settled order: %s", fmtEffects(effs))
	}
	if len(notifies) != drive+1 {
		t.Fatalf("%d Notify over %d drives: %v", len(notifies), drive+1, notifies)
	}
	s.checkLog(notifies...)
}

// checkLifecycleStep checks one successful Step of e from before to after
// with effects effs against what each event must do.
func checkLifecycleStep(t *testing.T, e order.Event, before, after order.Order, effs []order.Effect) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%T%+v -> %s: %s", e, e, fmtEffects(effs), fmt.Sprintf(format, args...))
	}
	finished := before.Status != after.Status && after.Status.Terminal()
	if a, ok := e.(order.CalloutAccepted); ok && before.Status.Terminal() && before.Job(a.JobID).Status == order.JobPending {
		// Accepted after its order finished: under way at its service, so
		// compensated if it can be.
		j := after.Job(a.JobID)
		want := []order.Effect{order.Persist{Version: after.Version}}
		if j.CancelEndpoint != "" {
			want = append(want, order.Compensate{Job: fullRef(j)})
		}
		if j.Status != order.JobProcessing || !reflect.DeepEqual(effs, want) {
			fail("late acceptance of %s: want %s", a.JobID, fmtEffects(want))
		}
	}
	for i := range after.Jobs {
		j, was := &after.Jobs[i], &before.Jobs[i]
		if !isPending(j.Compensation) || isPending(was.Compensation) {
			continue
		}
		// A compensation starts.
		lateAccept := false
		if a, ok := e.(order.CalloutAccepted); ok && a.JobID == j.JobID && was.Status == order.JobPending && before.Status.Terminal() {
			lateAccept = true
		}
		switch {
		case j.Status != order.JobProcessing || j.CancelEndpoint == "":
			fail("compensation of %s, which is %v with cancel endpoint %q", j.JobID, j.Status, j.CancelEndpoint)
		case !finished && !lateAccept:
			fail("compensation of %s started while the order went %v → %v", j.JobID, before.Status, after.Status)
		case after.Status == order.Completed || !after.Status.Terminal():
			fail("compensation of %s in a %v order", j.JobID, after.Status)
		}
	}
	if finished {
		for _, j := range after.Jobs {
			want := after.Status != order.Completed && j.Status == order.JobProcessing && j.CancelEndpoint != ""
			if isPending(j.Compensation) != want {
				fail("order %v: job %s (%v, cancel endpoint %q) has compensation %s", after.Status, j.JobID, j.Status, j.CancelEndpoint, fmtDelivery(j.Compensation))
			}
		}
		if isPending(after.Notification) != (after.NotifyURL != "") {
			fail("order %v with notifyUrl %q has notification %s", after.Status, after.NotifyURL, fmtDelivery(after.Notification))
		}
	}
	settled := after.Status.Terminal() && len(unsettledEffects(after)) == 0
	if m, err := order.Restore(after, order.Policy{}); err != nil || m.Settled() != settled {
		fail("Settled() of %+v is not %v (%v)", after, settled, err)
	}
	waiting := after.Status == order.Running
	for _, j := range after.Jobs {
		waiting = waiting && j.Status != order.JobPending && !isPending(j.Compensation)
	}
	if m, err := order.Restore(after, order.Policy{}); err != nil || m.Waiting() != waiting {
		fail("Waiting() of %+v is not %v (%v)", after, waiting, err)
	}

	switch e := e.(type) {
	case order.CancelRequested:
		if before.Status == order.Running {
			if after.Status != order.Cancelled || len(effs) < 2 || !reflect.DeepEqual(effs[1], order.Reply{}) {
				fail("cancel of a running order")
			}
		} else if !reflect.DeepEqual(effs, []order.Effect{order.Reply{Err: order.ErrOrderFinished}}) {
			fail("cancel of a %v order", before.Status)
		}
	case order.RetryRequested:
		if before.Status != order.Failed && before.Status != order.Expired {
			if !reflect.DeepEqual(effs, []order.Effect{order.Reply{Err: order.ErrNotRetryable}}) {
				fail("retry of a %v order", before.Status)
			}
			return
		}
		if (after.Status != order.Running && after.Status != order.Completed) || after.Retries != before.Retries+1 ||
			!after.Deadline.Equal(e.Deadline) || after.Error != nil || len(effs) < 2 || !reflect.DeepEqual(effs[1], order.Reply{}) {
			fail("retry of a %v order gave a %v order with %d retries", before.Status, after.Status, after.Retries)
		}
		called := callouts(effs)
		for i := range after.Jobs {
			j, was := &after.Jobs[i], &before.Jobs[i]
			late := was.LateCallback != nil && was.LateCallback.Status == order.JobCompleted
			waiting := was.Status == order.JobProcessing && before.Status == order.Failed && was.Compensation == nil && was.LateCallback == nil
			redriven := was.Status != order.JobCompleted && !late && !waiting
			switch {
			case was.Status == order.JobCompleted && !reflect.DeepEqual(*j, *was):
				fail("completed job %s changed", j.JobID)
			case late && (j.Status != order.JobCompleted || string(j.Result) != string(was.LateCallback.Result)):
				fail("job %s did not take its late result", j.JobID)
			case waiting && !reflect.DeepEqual(*j, *was):
				fail("job %s under way changed", j.JobID)
			case redriven && (j.Status != order.JobPending || j.Attempts != was.Attempts+1 || j.FirstAttempt != j.Attempts ||
				fmt.Sprint(called[j.JobID]) != fmt.Sprint([]int{j.Attempts}) || j.Compensation != nil):
				fail("job %s not re-driven: %+v, called out %v", j.JobID, *j, called[j.JobID])
			case !redriven && len(called[j.JobID]) != 0:
				fail("job %s called out", j.JobID)
			}
		}
	case order.CompensationDone:
		was := before.Job(e.JobID)
		if !isPending(was.Compensation) {
			if len(effs) != 0 {
				fail("stale compensation outcome")
			}
			return
		}
		want := delivery(e.Attempts, e.Err, e.At.Sub(t0))
		if got := after.Job(e.JobID).Compensation; !reflect.DeepEqual(got, want) {
			fail("compensation %s, want %s", fmtDelivery(got), fmtDelivery(want))
		}
	case order.NotificationDone:
		if !isPending(before.Notification) {
			if len(effs) != 0 {
				fail("stale notification outcome")
			}
			return
		}
		if want := delivery(e.Attempts, e.Err, e.At.Sub(t0)); !reflect.DeepEqual(after.Notification, want) {
			fail("notification %s, want %s", fmtDelivery(after.Notification), fmtDelivery(want))
		}
	}
}
