package order_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/fanflow/fanflow/order"
)

// BenchmarkStep_fullOrder is one whole order through the Machine: Created,
// three CalloutAccepted and three CallbackReceived (the last completes it).
func BenchmarkStep_fullOrder(b *testing.B) {
	c := created()
	events := []order.Event{
		accepted(0, 1, time.Second), accepted(1, 1, time.Second), accepted(2, 1, time.Second),
		callback(0, 2*time.Second), callback(1, 3*time.Second), callback(2, 4*time.Second),
	}
	b.ReportAllocs()
	for b.Loop() {
		m := order.New(order.Policy{})
		if _, err := m.Step(c); err != nil {
			b.Fatal(err)
		}
		for _, e := range events {
			if _, err := m.Step(e); err != nil {
				b.Fatal(err)
			}
		}
		if m.Status() != order.Completed {
			b.Fatalf("order %v, want completed", m.Status())
		}
	}
}

// completedOrder is the snapshot of a finished three-job order.
func completedOrder(b testing.TB) order.Order {
	b.Helper()
	m := machineAfter(b, order.Policy{}, accepted(0, 1, 1), accepted(1, 1, 2), accepted(2, 1, 3),
		callback(0, time.Second), callback(1, 2*time.Second), callback(2, 3*time.Second))
	return m.Snapshot()
}

func BenchmarkSnapshotEncode(b *testing.B) {
	o := completedOrder(b)
	data, err := json.Marshal(o)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(o); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSnapshotDecode(b *testing.B) {
	data, err := json.Marshal(completedOrder(b))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var o order.Order
		if err := json.Unmarshal(data, &o); err != nil {
			b.Fatal(err)
		}
		if len(o.Jobs) != 3 {
			b.Fatalf("%d jobs decoded", len(o.Jobs))
		}
	}
}

func BenchmarkSnapshotAppendJSON(b *testing.B) {
	o := completedOrder(b)
	data, err := o.AppendJSON(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := o.AppendJSON(nil); err != nil {
			b.Fatal(err)
		}
	}
}
