package actors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
)

// internalRetry is how long an order waits before stepping again an internal
// event (a callout result, a deadline) whose snapshot could not be stored.
const internalRetry = time.Second

// passivateGrace is how long an order actor that has left the directory
// keeps serving before it stops: a request that found it just before it left
// has long been delivered by then (protoactor drops, unanswered, what reaches
// a stopped actor's mailbox).
const passivateGrace = time.Second

// snapshotBufs hold snapshots while they are encoded: the stored copy is
// then allocated at its exact length, as it stays in memory (for reads)
// for as long as its order does.
var snapshotBufs = sync.Pool{New: func() any { return new([]byte) }}

// boot survives restarts of one order actor by its supervisor: a fresh actor
// waits for its createOrder; once a snapshot is stored, a restarted one loads.
// A preloaded actor (recovery) waits for the snapshot that Recover loads in
// a batch for it, unless a request comes first (then it loads on its own).
type boot struct{ fresh, preload bool }

// pendingStep is a step whose effects wait for a snapshot to be durable.
type pendingStep struct {
	after  []order.Effect // its effects after its Persist (all of them, if it had none)
	sender replyTo
	ev     order.Event
}

// stashed is a message that arrived while the actor waited for I/O.
type stashed struct {
	msg    any
	sender replyTo
}

// orderActor is the shell around one order.Machine: it is the only goroutine
// that touches the machine, and it carries out the machine's effects under
// the contract of package order. It never blocks on I/O: loads and snapshot
// writes report back as messages, and while one is in flight the messages
// that would step the machine are stashed, so memory never runs ahead of
// the store by more than the one snapshot being written. When that write is
// durable, every stashed message is stepped and all those steps share the
// next snapshot (group commit within the order: the three callbacks of an
// order that arrive together cost two writes, not three); no effect of a
// step leaves before the snapshot that holds it is durable.
type orderActor struct {
	rt   *runtime
	id   string
	boot *boot

	m       *order.Machine
	durable []byte // JSON of the last snapshot known stored; nil before the first
	first   []byte // JSON of the created order, as its create was answered; kept only for an idempotency key

	busy  bool // a load or a snapshot write is in flight
	stash []stashed

	// Loading: each own load has a generation, and only the result of the
	// latest, while it is awaited, is used; while preloading, the record
	// Recover sends (loaded.preload) is used too, whichever comes first.
	// A preloading actor whose loads failed stays preloading: known, busy,
	// and loading on its own when a request comes.
	loadGen    uint64
	loading    bool // an own load is awaited
	preloading bool // the record from Recover is awaited

	// The steps taken since the last snapshot was handed to the saver:
	// what remains to do for each once the next snapshot is durable. While
	// busy is false the batch is open (steps are still being taken, within
	// one Receive); flush hands its snapshot to the saver, and the batch is
	// then in flight with inflight, its JSON.
	batch    []pendingStep
	inflight []byte

	children map[string]*actor.PID
	timer    *time.Timer

	// The idle timer passivates an order that has nothing left to do, or
	// (with Config.PassivateAfter) that only waits for callbacks.
	idle     *time.Timer
	activity uint64 // messages handled so far
	// away: this incarnation left memory while waiting; it steps nothing
	// more and hands every request on to its successor.
	away bool
	// woken: this incarnation brought back an order that had left memory
	// while running, so its start is not a new one for the metrics.
	woken bool
}

func newOrderProps(rt *runtime, id string, b *boot) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		return &orderActor{rt: rt, id: id, boot: b}
	}, actor.WithDispatcher(rt.disp))
}

// Receive implements actor.Actor.
func (a *orderActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		a.rt.resident.Add(1)
		if a.boot.fresh {
			// A fresh order that never gets its createOrder goes away.
			a.armIdle(ctx, a.rt.cfg.RequestTimeout)
			return
		}
		if a.boot.preload {
			a.busy, a.preloading = true, true
			return
		}
		a.load(ctx)
	case *actor.Stopping:
		for _, pid := range a.children {
			ctx.Stop(pid)
		}
		if a.timer != nil {
			a.timer.Stop()
		}
		if a.idle != nil {
			a.idle.Stop()
		}
		a.rt.durable.Delete(a.id)
		a.rt.dir.leave(a.id, ctx.Self())
	case idleCheck:
		// Passivation, in two steps so that no request is dropped: leave the
		// directory (new requests activate a new incarnation), then stop
		// after a grace period in which requests already on their way here
		// are handed on to that successor. From leaving on, this incarnation
		// steps nothing: two incarnations never change one order.
		if msg.activity != a.activity || a.busy || a.away {
			return
		}
		if pid, ok := a.rt.dir.lookup(a.id); !ok || pid.Id != ctx.Self().Id {
			// Not (yet) the order's actor: spawned, but its spawner has not
			// entered it in the directory yet (leaving now would leave
			// nothing, and it would be entered after, while away), or about
			// to be discarded. Look again later.
			a.armIdle(ctx, msg.after)
			return
		}
		switch {
		case a.m == nil || a.m.Settled():
		case a.waitingIdle():
			// Its state is in the store; the alarms keep its deadline. Set
			// before leaving, so that a successor's activation cancels it.
			a.rt.alarms.set(a.id, a.m.View().Deadline)
			if a.timer != nil {
				a.timer.Stop()
				a.timer = nil
			}
		default:
			return
		}
		a.away = true
		a.rt.dir.leave(a.id, ctx.Self())
		self, root := ctx.Self(), ctx.ActorSystem().Root
		time.AfterFunc(passivateGrace, func() { root.Send(self, passivate{}) })
	case passivate:
		ctx.Stop(ctx.Self()) // already out of the directory; nothing is left here
	case reactivate:
		a.busy = false
		a.step(ctx, order.Activated{At: a.rt.cfg.Now()}, nil)
		a.drain(ctx)
	case loaded:
		if msg.preload && !a.preloading || !msg.preload && (!a.loading || msg.gen != a.loadGen) {
			return // superseded: the order was loaded otherwise, or is loading again
		}
		if msg.err != nil && a.preloading && !(msg.preload && errors.Is(msg.err, persistence.ErrNotFound)) {
			// A load failed, but the order exists as far as we know: stay,
			// known and waiting, and load again for the next request.
			// What waits now is refused (its senders retry) unless an own
			// load is still under way.
			if !msg.preload {
				a.loading = false
			}
			if !a.loading {
				a.refuseStash(ctx, loadError(a.id, msg.err))
			}
			return
		}
		a.loading, a.preloading, a.boot.preload = false, false, false
		a.onLoaded(ctx, msg)
		a.drain(ctx)
	case persisted:
		a.onPersisted(ctx, msg)
		a.drain(ctx)
	case *actor.Stopped, *actor.Restarting: // a restart starts a new incarnation
		a.rt.resident.Add(-1)
	case *actor.Terminated:
	case envelope:
		a.receive(ctx, msg.msg, msg.reply)
	default:
		a.receive(ctx, msg, nil)
	}
}

// receive handles a request (answered on sender) or an internal message
// (sender nil), or stashes it while the actor waits for I/O.
func (a *orderActor) receive(ctx actor.Context, msg any, sender replyTo) {
	a.activity++
	if a.away {
		a.handOn(ctx, msg, sender)
		return
	}
	if _, create := msg.(createOrder); a.busy || (a.m == nil && a.boot.fresh && !create) {
		// Busy, or a fresh order whose create has not come yet: wait.
		a.stash = append(a.stash, stashed{msg: msg, sender: sender})
		if a.rt.stashed != nil {
			a.rt.stashed()
		}
		if a.preloading && !a.loading {
			// Someone waits for this order: do not wait for its batch.
			a.load(ctx)
		}
		return
	}
	a.handle(ctx, msg, sender)
	a.drain(ctx)
}

// stop leaves the directory and stops this incarnation.
func (a *orderActor) stop(ctx actor.Context) {
	a.rt.dir.leave(a.id, ctx.Self())
	ctx.Stop(ctx.Self())
}

// drain handles stashed messages until one starts I/O or none is left.
func (a *orderActor) drain(ctx actor.Context) {
	for !a.busy && len(a.stash) > 0 {
		s := a.stash[0]
		a.stash[0] = stashed{}
		a.stash = a.stash[1:]
		a.handle(ctx, s.msg, s.sender)
	}
	a.flush(ctx)
	if a.busy || a.m == nil {
		return
	}
	switch {
	case a.m.Settled():
		a.armIdle(ctx, a.rt.cfg.FinishedIdle)
	case a.waitingIdle():
		a.armIdle(ctx, a.rt.cfg.PassivateAfter)
	default:
		a.disarmIdle()
	}
}

// waitingIdle reports whether a running order may leave memory when idle:
// passivation is on, its machine only waits for callbacks and no job actor
// is still at work for it.
func (a *orderActor) waitingIdle() bool {
	return a.rt.cfg.PassivateAfter > 0 && len(a.children) == 0 && a.m.Waiting()
}

// handOn passes a request that reached this incarnation after it left
// memory to the order's current actor (activating one from the store if
// need be), on behalf of its sender. Internal messages are dropped: its
// machine, which only waited for callbacks, ignores them, and the successor
// re-arms the deadline.
func (a *orderActor) handOn(ctx actor.Context, msg any, sender replyTo) {
	switch msg.(type) {
	case callback, cancelOrder, retryOrder, firstAnswer:
		ctx.Send(a.rt.find(a.id), envelope{msg: msg, reply: sender})
	}
}

// disarmIdle stops the idle timer: the order has work.
func (a *orderActor) disarmIdle() {
	if a.idle != nil {
		a.idle.Stop()
		a.idle = nil
	}
}

// armIdle (re)starts the idle timer: if no message comes within d, the
// actor stops, provided it still has nothing to do then.
func (a *orderActor) armIdle(ctx actor.Context, d time.Duration) {
	if a.idle != nil {
		a.idle.Stop()
	}
	self, root, seen := ctx.Self(), ctx.ActorSystem().Root, a.activity
	a.idle = time.AfterFunc(d, func() { root.Send(self, idleCheck{activity: seen, after: d}) })
}

func (a *orderActor) handle(ctx actor.Context, msg any, sender replyTo) {
	now := a.rt.cfg.Now()
	switch msg := msg.(type) {
	case createOrder:
		if a.m != nil {
			sender.send(orderReply{err: fmt.Errorf("order %s: %w: already created", a.id, ErrInvalid)})
			return
		}
		a.m = order.New(a.rt.cfg.Policy)
		a.step(ctx, msg.ev, sender)
	case callback:
		if a.m == nil {
			sender.send(callbackDone{err: fmt.Errorf("order %s: %w", a.id, ErrNotFound)})
			return
		}
		msg.ev.At = now
		a.step(ctx, msg.ev, sender)
	case firstAnswer:
		switch {
		case a.first != nil:
			sender.send(orderReply{data: a.first})
		case a.durable != nil:
			sender.send(orderReply{data: a.durable})
		default:
			sender.send(orderReply{err: fmt.Errorf("order %s: %w", a.id, ErrNotFound)})
		}
	case cancelOrder, retryOrder:
		if a.m == nil {
			sender.send(orderReply{err: fmt.Errorf("order %s: %w", a.id, ErrNotFound)})
			return
		}
		if _, ok := msg.(cancelOrder); ok {
			a.step(ctx, order.CancelRequested{At: now, Reason: msg.(cancelOrder).reason}, sender)
			return
		}
		o := a.m.View()
		a.step(ctx, order.RetryRequested{At: now, Deadline: now.Add(o.Deadline.Sub(o.CreatedAt))}, sender)
	case compensated:
		a.forget(msg.done)
		if a.m != nil {
			a.step(ctx, order.CompensationDone{At: now, JobID: msg.jobID, Attempts: msg.attempts, Err: errText(msg.err)}, nil)
		}
	case notified:
		if a.m != nil {
			a.step(ctx, order.NotificationDone{At: now, Attempts: msg.attempts, Err: errText(msg.err)}, nil)
		}
	case calloutDone:
		a.forget(msg.done)
		if a.m == nil {
			return
		}
		if msg.err == nil {
			a.step(ctx, order.CalloutAccepted{At: now, JobID: msg.jobID, Attempt: msg.attempt}, nil)
			return
		}
		a.step(ctx, order.CalloutFailed{At: now, JobID: msg.jobID, Attempt: msg.attempt, Retryable: msg.retryable, Err: msg.err.Error()}, nil)
	case deadlineFired:
		if a.m != nil {
			a.step(ctx, order.DeadlinePassed{At: later(now, msg.deadline)}, nil)
		}
	case retryEvent:
		if a.m != nil {
			a.step(ctx, restamp(msg.ev, now), nil)
		}
	default:
		a.rt.log.Warn("order actor: unexpected message", "orderId", a.id, "type", fmt.Sprintf("%T", msg))
	}
}

// step feeds one event to the machine and carries out its effects. sender,
// when not nil, is waiting for the Reply.
func (a *orderActor) step(ctx actor.Context, ev order.Event, sender replyTo) {
	effs, err := a.m.Step(ev)
	if err != nil && a.batch != nil {
		// Refused in a state that is not durable yet: answer with the rest.
		a.batch = append(a.batch, pendingStep{after: []order.Effect{order.Reply{Err: err}}, sender: sender, ev: ev})
		return
	}
	if err != nil {
		a.reply(ctx, sender, ev, order.Reply{Err: err})
		if a.durable == nil { // a create that was refused: nothing exists
			a.refuseStash(ctx, fmt.Errorf("order %s: %w", a.id, ErrNotFound))
			a.stop(ctx)
		}
		return
	}
	a.run(ctx, effs, sender, ev)
	switch ev.(type) {
	case order.Created, order.Activated:
		// Alone in their snapshot: nothing steps an order before its
		// creation or its activation is stored.
		a.flush(ctx)
		return
	}
	for _, e := range effs {
		switch e.(type) {
		case order.Notify, order.Deliver, order.Compensate:
			// The last step of its snapshot: its effects read the state it
			// leaves (the webhook's body, the drive its job actors belong
			// to), which a later step of the same batch could change.
			a.flush(ctx)
			return
		}
	}
}

// run carries out effects in order. At a Persist it opens (or joins) the
// batch of steps that the next snapshot will make durable and keeps the
// rest for then; while a batch is open, every effect waits for it, so that
// nothing leaves that depends on a state not yet stored.
func (a *orderActor) run(ctx actor.Context, effs []order.Effect, sender replyTo, ev order.Event) {
	if a.batch != nil {
		if len(effs) > 0 {
			if _, ok := effs[0].(order.Persist); ok {
				effs = effs[1:]
			}
		}
		a.batch = append(a.batch, pendingStep{after: effs, sender: sender, ev: ev})
		return
	}
	for i, e := range effs {
		switch e := e.(type) {
		case order.Persist:
			a.batch = append(make([]pendingStep, 0, 4), pendingStep{after: effs[i+1:], sender: sender, ev: ev})
			return
		case order.Reply:
			a.reply(ctx, sender, ev, e)
		case order.CallOut:
			ctx.Send(a.child(ctx, e.Job), callOut{attempt: e.Attempt})
		case order.RetryCallOut:
			ctx.Send(a.child(ctx, e.Job), callOut{attempt: e.Attempt, at: e.At})
		case order.StartTimer:
			if a.timer == nil && !a.woken {
				a.rt.metrics.started() // a running order arms its deadline once per start
			}
			a.woken = false
			a.arm(ctx, e.At)
		case order.Compensate:
			ctx.Send(a.child(ctx, e.Job), compensate{})
		case order.Deliver:
			a.deliver(ctx, e.URL)
		case order.Notify:
			a.finished(ctx, e.Status)
		}
	}
}

// flush hands the snapshot of an open batch to the saver: one write for
// every step taken since the last one (the steps of messages that waited
// while that one was written). Nothing more steps until it is durable.
func (a *orderActor) flush(ctx actor.Context) {
	if a.busy || a.batch == nil {
		return
	}
	a.busy = true
	version := a.m.View().Version
	buf := snapshotBufs.Get().(*[]byte)
	enc, err := a.m.View().AppendJSON((*buf)[:0])
	data := bytes.Clone(enc)
	*buf = enc[:0]
	snapshotBufs.Put(buf)
	if err != nil {
		// Only invalid raw JSON could do this, and the Client validates it;
		// treat it as a failed write so that nothing runs ahead.
		a.onPersisted(ctx, persisted{version: version, err: fmt.Errorf("encode snapshot: %w", err)})
		return
	}
	a.inflight = data
	self, root := ctx.Self(), ctx.ActorSystem().Root
	rec := persistence.RecordOf(a.m.View(), data, a.rt.cfg.storeRetention())
	a.rt.cfg.Saver.Enqueue(rec, func(err error) { root.Send(self, persisted{version: version, err: err}) })
}

func (a *orderActor) onPersisted(ctx actor.Context, p persisted) {
	if !a.busy || len(a.batch) == 0 {
		// Not this incarnation's write (a supervisor restarted the actor
		// while it was in flight): nothing here waits for it.
		return
	}
	steps := a.batch
	a.busy, a.batch = false, nil
	if p.err == nil {
		a.durable, a.inflight = a.inflight, nil
		a.rt.durable.Store(a.id, a.durable)
		if _, ok := steps[0].ev.(order.Created); ok && a.m.View().IdempotencyKey != "" {
			a.first = a.durable // a repeat of the create gets this answer
		}
		a.boot.fresh = false
		a.rt.metrics.persisted()
		for _, st := range steps {
			a.run(ctx, st.after, st.sender, st.ev)
		}
		return
	}
	a.inflight = nil
	a.rt.log.Warn("snapshot not stored", "orderId", a.id, "version", p.version, "steps", len(steps), "err", p.err)
	for _, st := range steps {
		a.reply(ctx, st.sender, st.ev, order.Reply{Err: fmt.Errorf("order %s: %w: %w", a.id, ErrUnavailable, p.err)})
	}
	if a.durable == nil { // the order was never stored: it does not exist
		a.m = nil
		a.refuseStash(ctx, fmt.Errorf("order %s: %w: its creation was not stored", a.id, ErrUnavailable))
		a.stop(ctx)
		return
	}
	if errors.Is(p.err, persistence.ErrStale) {
		// Another writer got ahead of this actor: start over from the store.
		a.m = nil
		a.load(ctx)
		return
	}
	a.rollback(steps[0].ev) // an activation is alone in its batch
	self, root := ctx.Self(), ctx.ActorSystem().Root
	if _, ok := steps[0].ev.(order.Activated); ok {
		// Nothing may step the machine before its activation is stored:
		// stay busy (stashing) until a retried activation is.
		a.busy = true
		time.AfterFunc(internalRetry, func() { root.Send(self, reactivate{}) })
		return
	}
	for _, st := range steps {
		if ev := st.ev; st.sender == nil && ev != nil { // an internal event: try it again later
			time.AfterFunc(internalRetry, func() { root.Send(self, retryEvent{ev: ev}) })
		}
	}
}

// rollback replaces the machine by one built from the last stored snapshot.
// If the failed step was the activation itself, the machine must be
// activated again, so it is restored rather than resumed.
func (a *orderActor) rollback(failed order.Event) {
	var o order.Order
	err := json.Unmarshal(a.durable, &o)
	if err == nil {
		if _, ok := failed.(order.Activated); ok {
			a.m, err = order.Restore(o, a.rt.cfg.Policy)
		} else {
			a.m, err = order.Resume(o, a.rt.cfg.Policy)
		}
	}
	if err != nil {
		panic(fmt.Sprintf("order %s: own stored snapshot does not restore: %v", a.id, err))
	}
}

// load reads the order from the store on its own goroutine; the result
// comes back as a loaded message.
func (a *orderActor) load(ctx actor.Context) {
	a.busy, a.loading = true, true
	a.loadGen++
	self, root, loader, timeout, gen := ctx.Self(), ctx.ActorSystem().Root, a.rt.cfg.Loader, a.rt.cfg.RequestTimeout, a.loadGen
	go func() {
		c, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		rec, err := loader.Load(c, a.id)
		root.Send(self, loaded{rec: rec, err: err, gen: gen})
	}()
}

// loadError is what the requests waiting for a load that failed with err get.
func loadError(id string, err error) error {
	if errors.Is(err, persistence.ErrNotFound) {
		return fmt.Errorf("order %s: %w", id, ErrNotFound)
	}
	return fmt.Errorf("order %s: load: %w: %w", id, ErrUnavailable, err)
}

func (a *orderActor) onLoaded(ctx actor.Context, l loaded) {
	a.busy = false
	err := l.err
	if err == nil {
		o := l.decoded
		if o == nil {
			o = new(order.Order)
			err = json.Unmarshal(l.rec.Data, o)
		}
		if err == nil {
			a.m, err = order.Restore(*o, a.rt.cfg.Policy)
		}
		if err != nil {
			a.rt.log.Error("stored snapshot does not restore", "orderId", a.id, "err", err)
		}
	}
	if err != nil {
		// Refuse what waits and go away; the next request loads again.
		if l.err == nil || errors.Is(err, persistence.ErrNotFound) {
			// Gone or unreadable, it cannot be brought back at its deadline
			// either: retrying would only repeat this.
			a.rt.alarms.cancel(a.id)
		}
		a.refuseStash(ctx, loadError(a.id, err))
		a.stop(ctx)
		return
	}
	a.durable = l.rec.Data
	a.rt.durable.Store(a.id, a.durable)
	// Back in memory, its own timer keeps its deadline. An order that left
	// memory while running was counted as started before it left.
	a.woken = a.rt.alarms.cancel(a.id)
	a.step(ctx, order.Activated{At: a.rt.cfg.Now()}, nil)
}

// refuseStash answers every stashed request with err and drops the rest:
// the actor is about to stop without an order.
func (a *orderActor) refuseStash(ctx actor.Context, err error) {
	for _, s := range a.stash {
		switch s.msg.(type) {
		case callback:
			s.sender.send(callbackDone{err: err})
		case cancelOrder, retryOrder, firstAnswer, createOrder:
			s.sender.send(orderReply{err: err})
		}
	}
	a.stash = nil
}

// reply answers the request that stepped ev, if someone waits for it.
func (a *orderActor) reply(ctx actor.Context, sender replyTo, ev order.Event, r order.Reply) {
	if sender == nil {
		return
	}
	switch ev.(type) {
	case order.Created, order.CancelRequested, order.RetryRequested:
		if r.Err != nil {
			sender.send(orderReply{err: r.Err})
			return
		}
		sender.send(orderReply{data: a.durable})
	case order.CallbackReceived:
		if r.Err == nil && a.rt.debug {
			a.rt.log.Debug("callback applied", "orderId", a.id, "jobId", r.Outcome.JobID, "jobStatus", r.Outcome.JobStatus.String(), "duplicate", r.Outcome.Duplicate)
		}
		sender.send(callbackDone{out: r.Outcome, err: r.Err})
	}
}

func (a *orderActor) child(ctx actor.Context, j order.JobRef) *actor.PID {
	// One job actor per job and drive: after a retry of the order, the
	// actors of the previous drive may still be compensating.
	name := j.JobID + "." + strconv.Itoa(a.m.View().Retries)
	if pid, ok := a.children[name]; ok {
		return pid
	}
	if a.children == nil {
		a.children = make(map[string]*actor.PID, 4)
	}
	// A job actor stops when it has no work left (see jobActor), and its
	// successor may be spawned before it is gone: each gets a unique name.
	// It is spawned at the root, not as a protoactor child, and this actor
	// stops it when it stops: protoactor keeps the PID of every child that
	// ever stopped (in the spare capacity of the parent's child set, and the
	// PID caches the stopped process), so a waiting order would keep its
	// three finished job actors' memory.
	pid := ctx.ActorSystem().Root.SpawnPrefix(newJobProps(a.rt, ctx.Self(), a.id, j), ctx.Self().Id+"/"+name+".")
	a.children[name] = pid
	return pid
}

// forget removes a job actor that has stopped itself from the children, so
// that the next work for its job spawns a new one.
func (a *orderActor) forget(done *actor.PID) {
	if done == nil {
		return
	}
	for name, pid := range a.children {
		if pid.Equal(done) {
			delete(a.children, name)
			break
		}
	}
	if len(a.children) == 0 {
		a.children = nil // a waiting order keeps no empty map
	}
}

func (a *orderActor) arm(ctx actor.Context, at time.Time) {
	if a.timer != nil {
		a.timer.Stop()
	}
	self, root := ctx.Self(), ctx.ActorSystem().Root
	a.timer = time.AfterFunc(max(at.Sub(a.rt.cfg.Now()), 0), func() { root.Send(self, deadlineFired{deadline: at}) })
}

// finished stops the order's timer, tells its jobs' actors to stop once
// their compensation (if any) is done, and logs the end.
func (a *orderActor) finished(ctx actor.Context, s order.Status) {
	a.woken = false
	if a.timer != nil {
		a.timer.Stop()
		a.timer = nil
	}
	for _, pid := range a.children {
		ctx.Send(pid, finish{})
	}
	a.children = nil
	v := a.m.View()
	a.rt.metrics.finished(s, v.UpdatedAt.Sub(v.CreatedAt))
	if s == order.Completed {
		a.rt.log.Info("All BatchJob Completed!!", "orderId", a.id)
		return
	}
	a.rt.log.Info("order finished", "orderId", a.id, "status", s.String(), "error", a.m.View().Error)
}

// later returns the later of two times: a timer may fire a hair before its
// deadline by the clock; the deadline is what it stands for.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// restamp sets the time of an internal event that is stepped again.
func restamp(ev order.Event, now time.Time) order.Event {
	switch e := ev.(type) {
	case order.CalloutAccepted:
		e.At = now
		return e
	case order.CalloutFailed:
		e.At = now
		return e
	case order.DeadlinePassed:
		e.At = later(now, e.At)
		return e
	case order.Activated:
		e.At = now
		return e
	case order.CompensationDone:
		e.At = now
		return e
	case order.NotificationDone:
		e.At = now
		return e
	}
	return ev
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// deliver posts the order's final JSON (the snapshot just stored) to url on
// its own goroutine, with the callout retry policy, and reports the outcome.
func (a *orderActor) deliver(ctx actor.Context, url string) {
	self, root, body := ctx.Self(), ctx.ActorSystem().Root, a.durable
	post := func(c context.Context) (bool, error) {
		if a.rt.cfg.Poster == nil {
			return false, errors.New("no webhook client configured")
		}
		return a.rt.cfg.Poster.Post(c, url, body)
	}
	go func() {
		attempts, err := withRetries(a.rt.cfg.Policy, a.rt.cfg.CalloutTimeout, post)
		if err != nil {
			a.rt.log.Warn("completion webhook not delivered", "orderId", a.id, "url", url, "attempts", attempts, "err", err)
		}
		root.Send(self, notified{attempts: attempts, err: err})
	}()
}
