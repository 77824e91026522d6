package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fanflow/fanflow/actors"
	"github.com/fanflow/fanflow/httpapi"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// jobService is an in-memory job service that records what it receives
// and answers with a fixed status.
type jobService struct {
	status int
	body   string

	mu       sync.Mutex
	received []received
}

type received struct {
	method, path, contentType string
	body                      []byte
}

func (j *jobService) handle(ctx *fasthttp.RequestCtx) {
	j.mu.Lock()
	j.received = append(j.received, received{
		method:      string(ctx.Method()),
		path:        string(ctx.Path()),
		contentType: string(ctx.Request.Header.ContentType()),
		body:        bytes.Clone(ctx.PostBody()),
	})
	j.mu.Unlock()
	ctx.SetStatusCode(j.status)
	ctx.SetBodyString(j.body)
}

func (j *jobService) requests() []received {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]received(nil), j.received...)
}

// startJobService serves h in memory until the test ends and returns a
// dialer for it.
func startJobService(t *testing.T, h fasthttp.RequestHandler) fasthttp.DialFunc {
	t.Helper()
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: h}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := srv.ShutdownWithContext(ctx); err != nil {
			t.Errorf("job service shutdown: %v", err)
		}
		_ = ln.Close()
		select {
		case <-served:
		case <-time.After(testTimeout):
			t.Errorf("job service did not stop within %s", testTimeout)
		}
	})
	return func(string) (net.Conn, error) { return ln.Dial() }
}

func newCaller(t *testing.T, dial fasthttp.DialFunc) *httpapi.Caller {
	t.Helper()
	c, err := httpapi.NewCaller(httpapi.CallerConfig{BaseURL: "http://jobs.test/", Timeout: testTimeout, Dial: dial})
	if err != nil {
		t.Fatalf("NewCaller: %v", err)
	}
	return c
}

func callout() actors.Callout {
	return actors.Callout{OrderID: "o-1", JobID: "j-1", Endpoint: "/v1/batchJobA", Timeout: 30, Attempt: 2, Token: "tok-1"}
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func TestCaller_sendsTheCalloutBodyAsJSON(t *testing.T) {
	t.Parallel()
	js := &jobService{status: fasthttp.StatusAccepted}
	c := newCaller(t, startJobService(t, js.handle))

	if _, err := c.Call(callCtx(t), callout()); err != nil {
		t.Fatalf("Call: %v", err)
	}

	reqs := js.requests()
	if len(reqs) != 1 {
		t.Fatalf("job service got %d requests, want 1", len(reqs))
	}
	got := reqs[0]
	if got.method != fasthttp.MethodPost {
		t.Errorf("method = %s, want POST", got.method)
	}
	if got.path != "/v1/batchJobA" {
		t.Errorf("path = %q, want /v1/batchJobA (base URL's trailing slash trimmed)", got.path)
	}
	if got.contentType != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", got.contentType)
	}
	var body map[string]any
	if err := json.Unmarshal(got.body, &body); err != nil {
		t.Fatalf("body %s: %v", got.body, err)
	}
	want := map[string]any{"jobId": "j-1", "orderId": "o-1", "timeout": float64(30), "callbackToken": "tok-1"}
	if len(body) != len(want) {
		t.Errorf("body = %v, want exactly %v", body, want)
	}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("body[%q] = %v, want %v", k, body[k], v)
		}
	}
}

func TestCaller_omitsAnEmptyToken(t *testing.T) {
	t.Parallel()
	js := &jobService{status: fasthttp.StatusOK}
	c := newCaller(t, startJobService(t, js.handle))
	co := callout()
	co.Token = ""
	if _, err := c.Call(callCtx(t), co); err != nil {
		t.Fatalf("Call: %v", err)
	}
	reqs := js.requests()
	if len(reqs) != 1 {
		t.Fatalf("job service got %d requests, want 1", len(reqs))
	}
	if bytes.Contains(reqs[0].body, []byte("callbackToken")) {
		t.Errorf("body %s has a callbackToken, want none", reqs[0].body)
	}
}

func TestCaller_classifiesStatuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status    int
		wantErr   bool
		retryable bool
	}{
		{200, false, false},
		{202, false, false},
		{204, false, false},
		{400, true, false},
		{404, true, false},
		{409, true, false},
		{408, true, true},
		{429, true, true},
		{500, true, true},
		{503, true, true},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			t.Parallel()
			js := &jobService{status: tt.status, body: "job service says no"}
			c := newCaller(t, startJobService(t, js.handle))
			retryable, err := c.Call(callCtx(t), callout())
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if retryable != tt.retryable {
				t.Errorf("retryable = %v, want %v (err %v)", retryable, tt.retryable, err)
			}
			if err == nil {
				return
			}
			for _, want := range []string{"HTTP " + strconv.Itoa(tt.status), "/v1/batchJobA", "job service says no"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestCaller_longErrorBodyIsCut(t *testing.T) {
	t.Parallel()
	js := &jobService{status: 400, body: strings.Repeat("x", 10_000)}
	c := newCaller(t, startJobService(t, js.handle))
	_, err := c.Call(callCtx(t), callout())
	if err == nil {
		t.Fatal("Call returned nil for a 400")
	}
	if n := len(err.Error()); n > 500 {
		t.Errorf("error is %d bytes long, want the body cut short", n)
	}
}

func TestCaller_connectionRefusedIsRetryable(t *testing.T) {
	t.Parallel()
	refused := func(addr string) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	}
	c := newCaller(t, refused)
	retryable, err := c.Call(callCtx(t), callout())
	if err == nil {
		t.Fatal("Call returned nil with the job service down")
	}
	if !retryable {
		t.Errorf("retryable = false for %v, want true", err)
	}
}

func TestCaller_contextDeadlineBoundsTheCallout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	hang := func(ctx *fasthttp.RequestCtx) { <-release }
	dial := startJobService(t, hang)
	t.Cleanup(func() { close(release) }) // runs before the job service's shutdown

	c := newCaller(t, dial) // its own Timeout is testTimeout
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	retryable, err := c.Call(ctx, callout())
	if err == nil {
		t.Fatal("Call returned nil though the job service never answered")
	}
	if !retryable {
		t.Errorf("retryable = false for %v, want true", err)
	}
	if d := time.Since(start); d >= testTimeout {
		t.Errorf("Call took %s: the context's deadline was not used", d)
	}
}

func TestNewCaller_rejectsBaseURLWithoutHTTPScheme(t *testing.T) {
	t.Parallel()
	for _, base := range []string{"", "jobs.test:8080", "ftp://jobs.test", "HTTP//jobs.test"} {
		if _, err := httpapi.NewCaller(httpapi.CallerConfig{BaseURL: base}); err == nil {
			t.Errorf("NewCaller(%q) = nil error, want one", base)
		}
	}
}
