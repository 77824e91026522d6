package actors

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/fanflow/fanflow/persistence"
	"github.com/fanflow/fanflow/persistence/memory"
)

type refusingCaller struct{}

func (refusingCaller) Call(context.Context, Callout) (bool, error) {
	return false, errors.New("no job service in this test")
}

func TestRequest_toAStoppedActorFailsWithDeadLetterAtOnce(t *testing.T) {
	store := memory.New()
	committer := persistence.NewCommitter(store, persistence.CommitOptions{MaxDelay: -1})
	t.Cleanup(func() { _ = committer.Close(context.Background()) })
	// A request timeout far beyond the test's: only the dead-letter answer
	// can end the request in time.
	c, err := New(Config{Loader: store, Saver: committer, Caller: refusingCaller{}, RequestTimeout: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	pid := c.spawn("o-1", &boot{fresh: true})
	if err := c.system.Root.StopFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.request(context.Background(), pid, firstAnswer{})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, actor.ErrDeadLetter) {
			t.Fatalf("request to a stopped actor: %v, want %v", err, actor.ErrDeadLetter)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("request to a stopped actor got no answer")
	}
}

func TestReplyTo_sendNeverBlocks(t *testing.T) {
	r := make(replyTo, 1)
	r.send(1)
	r.send(2) // a second answer is dropped, not waited on
	var none replyTo
	none.send(3) // nobody asked
	if got := <-r; got != 1 {
		t.Fatalf("got %v, want the first answer", got)
	}
}
