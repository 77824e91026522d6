package actors

import (
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// directory maps the id of every order in memory to its actor. Each actor
// incarnation has a unique protoactor name (the order id and a sequence
// number), so an actor that is stopping can never be confused with its
// successor: it leaves the directory first, then stops once the messages
// already in its mailbox are handled. Safe for concurrent use.
type directory struct {
	m sync.Map // order id → *actor.PID
}

// lookup returns the actor of an order in memory.
func (d *directory) lookup(id string) (*actor.PID, bool) {
	v, ok := d.m.Load(id)
	if !ok {
		return nil, false
	}
	return v.(*actor.PID), true
}

// enter makes pid the actor of id unless another is; it returns the one
// that is.
func (d *directory) enter(id string, pid *actor.PID) (*actor.PID, bool) {
	v, loaded := d.m.LoadOrStore(id, pid)
	return v.(*actor.PID), !loaded
}

// leave removes pid as the actor of id, if it is.
func (d *directory) leave(id string, pid *actor.PID) {
	if v, ok := d.m.Load(id); ok && v.(*actor.PID).Id == pid.Id {
		d.m.CompareAndDelete(id, v)
	}
}
