package actors

import (
	"container/heap"
	"sync"
	"time"
)

// alarms keeps the deadlines of running orders that have left memory while
// waiting for callbacks (see Config.PassivateAfter) and wakes each order at
// its deadline, so that it expires on time. One timer serves them all, over
// a min-heap by deadline: an order away from memory costs one small entry.
// Safe for concurrent use.
type alarms struct {
	now  func() time.Time
	wake func(orderID string) // called without the lock held

	mu     sync.Mutex
	byID   map[string]*alarm
	queue  alarmQueue
	timer  *time.Timer
	closed bool
}

type alarm struct {
	orderID string
	at      time.Time
	index   int // in queue
}

func newAlarms(now func() time.Time, wake func(string)) *alarms {
	return &alarms{now: now, wake: wake, byID: map[string]*alarm{}}
}

// set makes the order's alarm ring at at (replacing an earlier setting).
func (a *alarms) set(orderID string, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	if al, ok := a.byID[orderID]; ok {
		al.at = at
		heap.Fix(&a.queue, al.index)
	} else {
		al := &alarm{orderID: orderID, at: at}
		heap.Push(&a.queue, al)
		a.byID[orderID] = al
	}
	if a.queue[0].orderID == orderID {
		a.arm()
	}
}

// cancel removes the order's alarm and reports whether it had one: the
// order is back in memory, where its own timer keeps its deadline.
func (a *alarms) cancel(orderID string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	al, ok := a.byID[orderID]
	if !ok {
		return false
	}
	heap.Remove(&a.queue, al.index)
	delete(a.byID, orderID)
	return true
}

// len returns the number of alarms set.
func (a *alarms) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.queue)
}

// close stops the alarms: none rings any more.
func (a *alarms) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	if a.timer != nil {
		a.timer.Stop()
	}
}

// arm sets the timer for the earliest alarm. a.mu is held.
func (a *alarms) arm() {
	if len(a.queue) == 0 {
		return
	}
	d := max(a.queue[0].at.Sub(a.now()), 0)
	if a.timer == nil {
		a.timer = time.AfterFunc(d, a.ring)
		return
	}
	a.timer.Reset(d)
}

// ring wakes every order whose alarm is due and re-arms for the next one.
// A due alarm stays set, to ring again after internalRetry, until the woken
// order's activation cancels it: an activation that fails (the store is
// down) does not lose the deadline.
func (a *alarms) ring() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	now := a.now()
	var due []string
	for len(a.queue) > 0 && !a.queue[0].at.After(now) {
		al := a.queue[0]
		al.at = now.Add(internalRetry)
		heap.Fix(&a.queue, 0)
		due = append(due, al.orderID)
	}
	a.arm()
	a.mu.Unlock()
	for _, id := range due {
		a.wake(id)
	}
}

// alarmQueue is a min-heap of alarms by time (container/heap).
type alarmQueue []*alarm

func (q alarmQueue) Len() int           { return len(q) }
func (q alarmQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q alarmQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}

func (q *alarmQueue) Push(x any) {
	al := x.(*alarm)
	al.index = len(*q)
	*q = append(*q, al)
}

func (q *alarmQueue) Pop() any {
	old := *q
	al := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return al
}
