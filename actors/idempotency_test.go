package actors_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/fanflow/fanflow/actors"
	"github.com/fanflow/fanflow/persistence"
)

func TestSubmit_concurrentCreatesWithOneKeyMakeOneOrder(t *testing.T) {
	const n = 20
	h := newHarness(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	answers := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i], errs[i] = h.client.Submit(ctx, actors.SubmitRequest{Parameters: json.RawMessage(`{"a":1}`), IdempotencyKey: "order-from-client-42"})
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("create %d: %v", i, errs[i])
		}
		if !bytes.Equal(answers[i], answers[0]) {
			t.Fatalf("answer %d differs:\n%s\n%s", i, answers[i], answers[0])
		}
	}
	page, err := h.store.List(ctx, persistence.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Records) != 1 || page.Records[0].OrderID != decode(t, answers[0]).OrderID {
		t.Fatalf("store holds %d orders, want exactly the one answered", len(page.Records))
	}
	if got := decode(t, answers[0]).IdempotencyKey; got != "order-from-client-42" {
		t.Fatalf("order records key %q", got)
	}
	other := h.submit(t, actors.SubmitRequest{IdempotencyKey: "another-key"})
	if other.OrderID == decode(t, answers[0]).OrderID {
		t.Fatal("a different key returned the same order")
	}
}

func TestSubmit_keyOfAFailedCreateCanBeUsedAgain(t *testing.T) {
	h := newHarness(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	req := actors.SubmitRequest{Parameters: json.RawMessage(`{}`), IdempotencyKey: "k-retry"}
	h.saver.fail(true)
	if _, err := h.client.Submit(ctx, req); !errors.Is(err, actors.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	h.saver.fail(false)
	data, err := h.client.Submit(ctx, req)
	if err != nil {
		t.Fatalf("second try with the same key: %v", err)
	}
	again, err := h.client.Submit(ctx, req)
	if err != nil || !bytes.Equal(again, data) {
		t.Fatalf("replay: err %v, same answer %v", err, bytes.Equal(again, data))
	}
}

func TestSubmit_replayAfterTheOrderLeftMemoryReturnsItsState(t *testing.T) {
	h := newHarness(t, nil, func(c *actors.Config) { c.FinishedIdle = 1 })
	o := h.submit(t, actors.SubmitRequest{Jobs: []string{"BatchJobA"}, IdempotencyKey: "k-late"})
	if _, err := h.callback(actors.CallbackRequest{OrderID: o.OrderID, JobID: o.Jobs[0].JobID}); err != nil {
		t.Fatal(err)
	}
	got := h.submit(t, actors.SubmitRequest{Jobs: []string{"BatchJobA"}, IdempotencyKey: "k-late"})
	if got.OrderID != o.OrderID {
		t.Fatalf("replay returned order %s, want %s", got.OrderID, o.OrderID)
	}
}
