package order_test

import (
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
