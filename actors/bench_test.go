package actors_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/fanflow/fanflow/actors"
	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
	"github.com/fanflow/fanflow/persistence/memory"
)

// BenchmarkOrderRoundTrip runs whole orders through the actors in process:
// submit, three callouts (accepted at once by a fake caller), three
// callbacks, with the memory store behind a real group committer. It
// measures fanflow's own cost per order, without HTTP or a network store.
func BenchmarkOrderRoundTrip(b *testing.B) {
	store := memory.New()
	committer := persistence.NewCommitter(store, persistence.CommitOptions{MaxDelay: -1})
	caller := newFakeCaller(nil)
	stop := make(chan struct{})
	defer close(stop)
	go func() { // nobody reads the callouts here
		for {
			select {
			case <-caller.calls:
			case <-stop:
				return
			}
		}
	}()
	client, err := actors.New(actors.Config{Loader: store, Saver: committer, Claims: store, Caller: caller}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		client.Close()
		_ = committer.Close(context.Background())
	}()
	ctx := context.Background()
	params := json.RawMessage(`{"customer":"c-1"}`)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			data, err := client.Submit(ctx, actors.SubmitRequest{Parameters: params})
			if err != nil {
				b.Error(err)
				return
			}
			var o order.Order
			if err := json.Unmarshal(data, &o); err != nil {
				b.Error(err)
				return
			}
			for _, j := range o.Jobs {
				if _, err := client.Callback(ctx, actors.CallbackRequest{OrderID: o.OrderID, JobID: j.JobID}); err != nil {
					b.Error(err)
					return
				}
			}
		}
	})
}
