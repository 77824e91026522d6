package actors

import (
	"testing"
	"time"
)

func TestAlarms_ringInDeadlineOrderAndAgainUntilCancelled(t *testing.T) {
	rang := make(chan string, 10)
	a := newAlarms(time.Now, func(id string) { rang <- id })
	defer a.close()
	now := time.Now()
	a.set("late", now.Add(30*time.Millisecond))
	a.set("gone", now.Add(10*time.Millisecond))
	a.set("early", now.Add(20*time.Millisecond))
	a.set("early", now.Add(5*time.Millisecond)) // moved: one alarm per order
	if !a.cancel("gone") || a.cancel("gone") {
		t.Fatal("cancel reports whether the alarm was set")
	}
	if n := a.len(); n != 2 {
		t.Fatalf("%d alarms, want 2", n)
	}
	next := func() string {
		t.Helper()
		select {
		case id := <-rang:
			return id
		case <-time.After(10 * time.Second):
			t.Fatal("no alarm rang")
			return ""
		}
	}
	if first, second := next(), next(); first != "early" || second != "late" {
		t.Fatalf("rang %s then %s, want early then late", first, second)
	}
	// Not cancelled (as if the woken order's activation failed): it rings again.
	if id := next(); id != "early" {
		t.Fatalf("rang %s again, want early", id)
	}
	a.cancel("early")
	a.cancel("late")
	if n := a.len(); n != 0 {
		t.Fatalf("%d alarms after cancelling all", n)
	}
}
