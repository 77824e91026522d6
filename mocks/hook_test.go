package mocks

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// answered is one call of Config.OnCallbackAnswered.
type answered struct {
	orderID, jobID string
	status         int
	body           string
}

func TestOnCallbackAnswered_seesEveryAnsweredAttemptWithItsBody(t *testing.T) {
	t.Parallel()
	// A receiver that answers 503 first, then 200, each with a body.
	ln := fasthttputil.NewInmemoryListener()
	var hits atomic.Int64
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if hits.Add(1) == 1 {
			ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "0")
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			ctx.SetBodyString(`{"error":{"code":"store_unavailable"}}`)
			return
		}
		ctx.SetBodyString(`{"orderStatus":"completed"}`)
	}}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		if err := srv.Shutdown(); err != nil {
			t.Errorf("receiver shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("receiver serve: %v", err)
		}
	})

	var (
		mu  sync.Mutex
		got []answered
	)
	var dials atomic.Int64
	h := newHarness(t, Config{
		// The first dial fails: an attempt without an answer is not reported.
		CallbackDial: func(string) (net.Conn, error) {
			if dials.Add(1) == 1 {
				return nil, errors.New("connection refused (test)")
			}
			return ln.Dial()
		},
		OnCallbackAnswered: func(orderID, jobID string, status int, body []byte) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, answered{orderID, jobID, status, string(body)})
		},
	}, nil)
	if status, b := h.post(t, validBody); status != fasthttp.StatusAccepted {
		t.Fatalf("status = %d: %s", status, b)
	}
	st := h.settle(t)
	if st.CallbacksSent != 1 || st.CallbacksRetried != 2 {
		t.Errorf("stats = %+v, want 1 sent after 2 retries", st)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []answered{
		{"o-1", "j-1", fasthttp.StatusServiceUnavailable, `{"error":{"code":"store_unavailable"}}`},
		{"o-1", "j-1", fasthttp.StatusOK, `{"orderStatus":"completed"}`},
	}
	if len(got) != len(want) {
		t.Fatalf("hook called %d times: %+v, want %+v", len(got), got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("call %d = %+v, want %+v", i+1, got[i], want[i])
		}
	}
}
