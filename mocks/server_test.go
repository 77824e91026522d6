package mocks

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/fanflow/fanflow/order"
)

// testTimeout bounds every wait in these tests; nothing waits on wall time
// otherwise.
const testTimeout = 10 * time.Second

const callbackURL = "http://fanflow.test/v1/parallelCallbacks/results"

// received is one request seen by the fake callback receiver.
type received struct {
	body        []byte
	token       string
	contentType string
	path        string
	answered    int
}

// receiver is a fake fanflow callback endpoint on an in-memory listener.
type receiver struct {
	ln   *fasthttputil.InmemoryListener
	got  chan received
	hits atomic.Int64
}

// newReceiver starts a receiver that answers the n-th request (1-based)
// with answer(n).
func newReceiver(t testing.TB, answer func(n int64) int) *receiver {
	t.Helper()
	r := &receiver{ln: fasthttputil.NewInmemoryListener(), got: make(chan received, 1000)}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		n := r.hits.Add(1)
		status := answer(n)
		select { // never blocks: a test that loses records times out waiting
		case r.got <- received{
			body:        bytes.Clone(ctx.PostBody()),
			token:       string(ctx.Request.Header.Peek("X-Callback-Token")),
			contentType: string(ctx.Request.Header.ContentType()),
			path:        string(ctx.Path()),
			answered:    status,
		}:
		default:
		}
		if status == fasthttp.StatusServiceUnavailable {
			ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "0")
		}
		ctx.SetStatusCode(status)
	}}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(r.ln) }()
	t.Cleanup(func() {
		if err := srv.Shutdown(); err != nil {
			t.Errorf("receiver shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("receiver serve: %v", err)
		}
	})
	return r
}

func always(status int) func(int64) int { return func(int64) int { return status } }

// dial adapts the receiver's listener to Config.CallbackDial.
func (r *receiver) dial(string) (net.Conn, error) { return r.ln.Dial() }

// next returns the next request the receiver saw, failing after testTimeout.
func (r *receiver) next(t testing.TB) received {
	t.Helper()
	select {
	case g := <-r.got:
		return g
	case <-time.After(testTimeout):
		t.Fatalf("no callback within %v", testTimeout)
		return received{}
	}
}

// harness is a mock Server on an in-memory listener, calling back rcv.
type harness struct {
	s      *Server
	rcv    *receiver
	client *fasthttp.Client
}

// newHarness starts a Server with cfg; unless cfg says otherwise it calls
// back immediately (TimeScale 0), with a fixed seed, to a fresh receiver
// answering 200.
func newHarness(t testing.TB, cfg Config, rcv *receiver) *harness {
	t.Helper()
	if rcv == nil {
		rcv = newReceiver(t, always(fasthttp.StatusOK))
	}
	if cfg.CallbackURL == "" {
		cfg.CallbackURL = callbackURL
	}
	if cfg.CallbackDial == nil {
		cfg.CallbackDial = rcv.dial
	}
	if cfg.TimeScale == nil {
		cfg.TimeScale = new(0.0)
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: s.Handler()}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := srv.Shutdown(); err != nil {
			t.Errorf("mock shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("mock serve: %v", err)
		}
	})
	return &harness{
		s:      s,
		rcv:    rcv,
		client: &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }},
	}
}

// call sends a callout and returns the status and body of the answer.
func (h *harness) call(t testing.TB, method, path, contentType, body string) (int, []byte) {
	t.Helper()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://jobs.test" + path)
	req.Header.SetMethod(method)
	if contentType != "" {
		req.Header.SetContentType(contentType)
	}
	req.SetBodyString(body)
	if err := h.client.DoTimeout(req, resp, testTimeout); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode(), bytes.Clone(resp.Body())
}

func (h *harness) post(t testing.TB, body string) (int, []byte) {
	t.Helper()
	return h.call(t, fasthttp.MethodPost, "/v1/batchJobA", "application/json", body)
}

// settle waits until no callback is pending and returns the stats.
func (h *harness) settle(t testing.TB) Stats {
	t.Helper()
	waitFor(t, "no pending callbacks", func() bool { return h.s.Stats().CallbacksPending == 0 })
	return h.s.Stats()
}

// waitFor polls cond until it holds, failing after testTimeout.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// closeAndCountHits closes the Server (which waits for sends in flight) and
// returns how many requests the receiver has seen in all.
func (h *harness) closeAndCountHits(t *testing.T) int64 {
	t.Helper()
	if err := h.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return h.rcv.hits.Load()
}

const validBody = `{"jobId":"j-1","orderId":"o-1","timeout":30,"callbackToken":"tok-1","extra":{"a":[1, 2.5]}}`

func TestCallout_validIsAcceptedAndEchoedOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{}, nil)

	status, body := h.call(t, fasthttp.MethodPost, "/v1/batchJobB", "application/json; charset=utf-8", validBody)
	if status != fasthttp.StatusAccepted {
		t.Fatalf("status = %d, want 202; body %s", status, body)
	}
	if want := `{"accepted":true,"jobId":"j-1"}`; string(body) != want {
		t.Errorf("body = %s, want %s", body, want)
	}

	cb := h.rcv.next(t)
	if string(cb.body) != validBody {
		t.Errorf("callback body = %s, want the callout echoed verbatim: %s", cb.body, validBody)
	}
	if cb.token != "tok-1" {
		t.Errorf("X-Callback-Token = %q, want tok-1", cb.token)
	}
	if cb.contentType != "application/json" {
		t.Errorf("callback Content-Type = %q", cb.contentType)
	}
	if cb.path != "/v1/parallelCallbacks/results" {
		t.Errorf("callback path = %q", cb.path)
	}
	st := h.settle(t)
	if st.CalloutsAccepted != 1 || st.CallbacksSent != 1 || st.CallbacksRetried != 0 || st.CallbacksFailed != 0 {
		t.Errorf("stats = %+v", st)
	}
	if n := h.closeAndCountHits(t); n != 1 {
		t.Errorf("receiver saw %d callbacks, want exactly 1", n)
	}
}

func TestCallout_withoutTokenSendsNoTokenHeader(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{}, nil)
	const body = `{"jobId":"j","orderId":"o","timeout":0}`
	if status, b := h.post(t, body); status != fasthttp.StatusAccepted {
		t.Fatalf("status = %d: %s", status, b)
	}
	cb := h.rcv.next(t)
	if cb.token != "" || string(cb.body) != body {
		t.Errorf("callback token %q body %s", cb.token, cb.body)
	}
}

func TestCallout_invalidIsRejectedWithoutCallback(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{}, nil)
	cases := []struct {
		name        string
		method, ct  string
		body        string
		status      int
		code, field string
		msg         string // the message must contain this
	}{
		{"wrong content type", "POST", "text/plain", validBody, 415, "unsupported_media_type", "", "Content-Type"},
		{"no content type", "POST", "", validBody, 415, "unsupported_media_type", "", "Content-Type"},
		{"wrong method", "GET", "application/json", "", 405, "method_not_allowed", "", "POST"},
		{"malformed JSON", "POST", "application/json", `{"jobId":`, 400, "invalid_json", "", "JSON"},
		{"empty body", "POST", "application/json", ``, 400, "invalid_json", "", "JSON"},
		{"not an object", "POST", "application/json", `["j","o",30]`, 400, "invalid_body", "", "object"},
		{"missing jobId", "POST", "application/json", `{"orderId":"o","timeout":1}`, 400, "missing_field", "jobId", "jobId"},
		{"empty jobId", "POST", "application/json", `{"jobId":"","orderId":"o","timeout":1}`, 400, "invalid_field", "jobId", "jobId"},
		{"orderId not a string", "POST", "application/json", `{"jobId":"j","orderId":7,"timeout":1}`, 400, "invalid_field", "orderId", "orderId"},
		{"orderId null", "POST", "application/json", `{"jobId":"j","orderId":null,"timeout":1}`, 400, "invalid_field", "orderId", "orderId"},
		{"missing timeout", "POST", "application/json", `{"jobId":"j","orderId":"o"}`, 400, "missing_field", "timeout", "timeout"},
		{"timeout not an integer", "POST", "application/json", `{"jobId":"j","orderId":"o","timeout":1.5}`, 400, "invalid_field", "timeout", "timeout"},
		{"timeout a string", "POST", "application/json", `{"jobId":"j","orderId":"o","timeout":"30"}`, 400, "invalid_field", "timeout", "timeout"},
		{"timeout negative", "POST", "application/json", `{"jobId":"j","orderId":"o","timeout":-1}`, 400, "invalid_field", "timeout", "timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := h.call(t, tc.method, "/v1/batchJobA", tc.ct, tc.body)
			if status != tc.status {
				t.Errorf("status = %d, want %d; body %s", status, tc.status, body)
			}
			var got struct {
				Error struct{ Code, Message, Field string }
			}
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("error body %q: %v", body, err)
			}
			if got.Error.Code != tc.code || got.Error.Field != tc.field || !strings.Contains(got.Error.Message, tc.msg) {
				t.Errorf("error = %+v, want code %q field %q and a message naming %q", got.Error, tc.code, tc.field, tc.msg)
			}
		})
	}
	st := h.s.Stats()
	if st.CalloutsInvalid != uint64(len(cases)) || st.CalloutsAccepted != 0 || st.CallbacksPending != 0 {
		t.Errorf("stats = %+v, want %d invalid and nothing accepted or pending", st, len(cases))
	}
	if n := h.closeAndCountHits(t); n != 0 {
		t.Errorf("receiver saw %d callbacks for invalid callouts, want 0", n)
	}
}

func TestHandler_unknownPathIs404JSON(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{}, nil)
	status, body := h.call(t, "POST", "/v1/batchJobZ", "application/json", validBody)
	if status != fasthttp.StatusNotFound || !bytes.Contains(body, []byte(`"code":"not_found"`)) {
		t.Errorf("got %d %s, want 404 not_found", status, body)
	}
}

func TestHandle_fallsThroughForOtherPaths(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{}, nil)
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/v1/parallelCallbacks")
	ctx.Request.Header.SetMethod("POST")
	if h.s.Handle(&ctx) {
		t.Fatal("Handle claimed /v1/parallelCallbacks")
	}
	if ctx.Response.StatusCode() != fasthttp.StatusOK || len(ctx.Response.Body()) != 0 {
		t.Errorf("Handle touched the response: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}

	ctx.Request.SetRequestURI("/v1/batchJobC")
	ctx.Request.Header.SetContentType("application/json")
	ctx.Request.SetBodyString(`{"jobId":"j","orderId":"o","timeout":0}`)
	if !h.s.Handle(&ctx) {
		t.Fatal("Handle did not claim /v1/batchJobC")
	}
	if ctx.Response.StatusCode() != fasthttp.StatusAccepted {
		t.Errorf("status = %d, want 202", ctx.Response.StatusCode())
	}
	h.rcv.next(t)
}

func TestCallout_failRateAnswers500WithoutCallback(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{CalloutFailRate: 1}, nil)
	status, body := h.post(t, validBody)
	if status != fasthttp.StatusInternalServerError || !bytes.Contains(body, []byte(`"code":"injected_failure"`)) {
		t.Fatalf("got %d %s, want 500 injected_failure", status, body)
	}
	st := h.s.Stats()
	if st.CalloutsRejected != 1 || st.CalloutsAccepted != 0 || st.CallbacksPending != 0 {
		t.Errorf("stats = %+v", st)
	}
	if n := h.closeAndCountHits(t); n != 0 {
		t.Errorf("receiver saw %d callbacks, want 0", n)
	}
}

func TestCallback_duplicateRateSendsTwice(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{DuplicateRate: 1}, nil)
	if status, b := h.post(t, validBody); status != fasthttp.StatusAccepted {
		t.Fatalf("status = %d: %s", status, b)
	}
	for i := range 2 {
		if cb := h.rcv.next(t); string(cb.body) != validBody || cb.token != "tok-1" {
			t.Errorf("callback %d = %s token %q", i, cb.body, cb.token)
		}
	}
	st := h.settle(t)
	if st.CallbacksSent != 2 || st.CallbacksDuplicated != 1 {
		t.Errorf("stats = %+v", st)
	}
	if n := h.closeAndCountHits(t); n != 2 {
		t.Errorf("receiver saw %d callbacks, want 2", n)
	}
}

func TestCallback_dropRateNeverCallsBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{DropRate: 1}, nil)
	if status, b := h.post(t, validBody); status != fasthttp.StatusAccepted {
		t.Fatalf("status = %d: %s", status, b)
	}
	// Deliveries are scheduled before the 202 is written, so nothing
	// pending now means nothing will ever be sent.
	st := h.s.Stats()
	if st.CallbacksDropped != 1 || st.CallbacksPending != 0 || st.CallbacksSent != 0 {
		t.Errorf("stats = %+v, want 1 dropped and nothing pending or sent", st)
	}
	if n := h.closeAndCountHits(t); n != 0 {
		t.Errorf("receiver saw %d callbacks, want 0", n)
	}
	if st := h.s.Stats(); st.CallbacksCancelled != 0 {
		t.Errorf("Close cancelled %d callbacks; a dropped job must schedule none", st.CallbacksCancelled)
	}
}

func TestCallback_failedRateCarriesStatusFailed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{FailedRate: 1}, nil)
	if status, b := h.post(t, validBody); status != fasthttp.StatusAccepted {
		t.Fatalf("status = %d: %s", status, b)
	}
	cb := h.rcv.next(t)
	var got map[string]json.RawMessage
	if err := json.Unmarshal(cb.body, &got); err != nil {
		t.Fatalf("callback body %s: %v", cb.body, err)
	}
	if string(got["status"]) != `"failed"` {
		t.Errorf("status = %s, want \"failed\"", got["status"])
	}
	var e struct{ Code, Message string }
	if err := json.Unmarshal(got["error"], &e); err != nil || e.Code == "" || e.Message == "" {
		t.Errorf("error = %s (%v), want an object with code and message", got["error"], err)
	}
	if !bytes.HasPrefix(cb.body, []byte(validBody[:len(validBody)-1]+",")) {
		t.Errorf("callback body %s does not keep the callout verbatim", cb.body)
	}
	if cb.token != "tok-1" {
		t.Errorf("X-Callback-Token = %q", cb.token)
	}
}

func TestFailedBody_replacesExistingStatus(t *testing.T) {
	t.Parallel()
	c := &callout{body: []byte(`{"jobId":"j","status":"completed"}`)}
	var got map[string]json.RawMessage
	if err := json.Unmarshal(failedBody(c), &got); err != nil {
		t.Fatal(err)
	}
	if string(got["status"]) != `"failed"` || string(got["jobId"]) != `"j"` || got["error"] == nil {
		t.Errorf("failedBody = %v", got)
	}
}

func TestCallback_retriedOn503ThenDeliveredOnce(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, func(n int64) int {
		if n <= 2 {
			return fasthttp.StatusServiceUnavailable
		}
		return fasthttp.StatusOK
	})
	h := newHarness(t, Config{}, rcv)
	if status, b := h.post(t, validBody); status != fasthttp.StatusAccepted {
		t.Fatalf("status = %d: %s", status, b)
	}
	for i, want := range []int{503, 503, 200} {
		cb := rcv.next(t)
		if cb.answered != want || string(cb.body) != validBody {
			t.Errorf("attempt %d answered %d (want %d) body %s", i+1, cb.answered, want, cb.body)
		}
	}
	st := h.settle(t)
	if st.CallbacksSent != 1 || st.CallbacksRetried != 2 || st.CallbacksFailed != 0 {
		t.Errorf("stats = %+v, want 1 sent after 2 retries", st)
	}
	if n := h.closeAndCountHits(t); n != 3 {
		t.Errorf("receiver saw %d requests, want 3", n)
	}
}

func TestCallback_409IsNotRetried(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{}, newReceiver(t, always(fasthttp.StatusConflict)))
	if status, b := h.post(t, validBody); status != fasthttp.StatusAccepted {
		t.Fatalf("status = %d: %s", status, b)
	}
	st := h.settle(t)
	if st.CallbacksFailed != 1 || st.CallbacksRetried != 0 || st.CallbacksSent != 0 {
		t.Errorf("stats = %+v, want 1 failed and no retry", st)
	}
	if n := h.closeAndCountHits(t); n != 1 {
		t.Errorf("receiver saw %d requests, want 1", n)
	}
}

func TestCallback_networkErrorIsRetried(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, always(fasthttp.StatusOK))
	var dials atomic.Int64
	h := newHarness(t, Config{CallbackDial: func(addr string) (net.Conn, error) {
		if dials.Add(1) == 1 {
			return nil, errors.New("connection refused (test)")
		}
		return rcv.dial(addr)
	}}, rcv)
	if status, b := h.post(t, validBody); status != fasthttp.StatusAccepted {
		t.Fatalf("status = %d: %s", status, b)
	}
	rcv.next(t)
	st := h.settle(t)
	if st.CallbacksSent != 1 || st.CallbacksRetried != 1 {
		t.Errorf("stats = %+v, want 1 sent after 1 retry", st)
	}
}

func TestCallback_givesUpAfterRetryFor(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{CallbackRetryFor: time.Nanosecond},
		newReceiver(t, always(fasthttp.StatusServiceUnavailable)))
	if status, b := h.post(t, validBody); status != fasthttp.StatusAccepted {
		t.Fatalf("status = %d: %s", status, b)
	}
	st := h.settle(t)
	if st.CallbacksFailed != 1 || st.CallbacksRetried != 0 || st.CallbacksSent != 0 {
		t.Errorf("stats = %+v, want 1 failed without retry", st)
	}
}

func TestClose_cancelsPendingCallbacksAndRefusesNewCallouts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{TimeScale: new(1.0)}, nil)
	if status, b := h.post(t, validBody); status != fasthttp.StatusAccepted { // due in 30 s
		t.Fatalf("status = %d: %s", status, b)
	}
	if st := h.s.Stats(); st.CallbacksPending != 1 {
		t.Fatalf("pending = %d, want 1", st.CallbacksPending)
	}
	if n := h.closeAndCountHits(t); n != 0 {
		t.Errorf("receiver saw %d callbacks, want 0", n)
	}
	if st := h.s.Stats(); st.CallbacksCancelled != 1 || st.CallbacksPending != 0 {
		t.Errorf("stats = %+v, want the pending callback cancelled", st)
	}
	if status, b := h.post(t, validBody); status != fasthttp.StatusServiceUnavailable {
		t.Errorf("after Close: %d %s, want 503", status, b)
	}
}

func TestSeed_makesInjectionDeterministic(t *testing.T) {
	t.Parallel()
	cfg := Config{CallbackURL: callbackURL, Seed: 42, CalloutFailRate: 0.5, DropRate: 0.5, Jitter: time.Second}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var fails int
	for i := range 64 {
		da, db := a.decide(), b.decide()
		if da != db {
			t.Fatalf("decision %d differs: %+v vs %+v", i, da, db)
		}
		if da.fail {
			fails++
		}
	}
	if fails == 0 || fails == 64 {
		t.Errorf("%d of 64 callouts failed at rate 0.5", fails)
	}
}

func TestConfig_defaults(t *testing.T) {
	t.Parallel()
	var c Config
	c.setDefaults()
	if len(c.Jobs) != 3 || c.Jobs[0].Endpoint != "/v1/batchJobA" {
		t.Errorf("Jobs = %+v", c.Jobs)
	}
	if c.TimeScale == nil || *c.TimeScale != 1 {
		t.Errorf("TimeScale = %v, want 1", c.TimeScale)
	}
	if c.CallbackRetryFor != 10*time.Minute {
		t.Errorf("CallbackRetryFor = %v", c.CallbackRetryFor)
	}
	c.TimeScale = new(0.0)
	c.setDefaults()
	if *c.TimeScale != 0 {
		t.Errorf("setDefaults overrode TimeScale 0 with %v", *c.TimeScale)
	}
}

func TestConfig_validateNamesEveryBadField(t *testing.T) {
	t.Parallel()
	_, err := New(Config{
		Jobs: []order.JobSpec{
			{Type: "A", Endpoint: "/a"}, {Type: "B", Endpoint: "/a"}, {Type: "C", Endpoint: "c"},
		},
		CallbackURL:      "ftp://x/y",
		TimeScale:        new(-1.0),
		Jitter:           -1,
		CalloutFailRate:  2,
		DuplicateRate:    -0.1,
		DropRate:         1.5,
		FailedRate:       math.NaN(),
		CallbackRetryFor: -time.Second,
	}, nil)
	if err == nil {
		t.Fatal("New accepted an invalid config")
	}
	for _, field := range []string{"Jobs[1].Endpoint", "Jobs[2].Endpoint", "CallbackURL", "TimeScale", "Jitter",
		"CalloutFailRate", "DuplicateRate", "DropRate", "FailedRate", "CallbackRetryFor"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not name %s:\n%v", field, err)
		}
	}
	if _, err := New(Config{}, nil); err == nil || !strings.Contains(err.Error(), "CallbackURL: required") {
		t.Errorf("New without CallbackURL: %v", err)
	}
}
