package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/fanflow/fanflow/actors"
	"github.com/fanflow/fanflow/httpapi"
	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
)

// fuzzBodyLimit is small so that the fuzzer reaches 413 with small inputs.
const fuzzBodyLimit = 256

// fuzzService is an OrderService that behaves like actors.Client in what
// the API can observe, decided by the request alone: it refuses unknown or
// repeated job types and an empty job list (400), and a callback whose
// token is "bad" (401), whose orderId or jobId is "gone" (404) or whose
// orderId is "done" (409). It counts its calls and keeps the last request
// and error, so that a fuzz iteration knows whether it reached the service
// and what the service said. It is safe for concurrent use.
type fuzzService struct {
	mu       sync.Mutex
	calls    int
	err      error // of the last call
	submit   actors.SubmitRequest
	callback actors.CallbackRequest
}

// fuzzJobTypes are the job types the fuzzService knows.
var fuzzJobTypes = map[string]bool{"BatchJobA": true, "BatchJobB": true, "BatchJobC": true}

func (f *fuzzService) record(err error) error {
	f.calls++
	f.err = err
	return err
}

func (f *fuzzService) Submit(_ context.Context, req actors.SubmitRequest) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.submit = req
	if req.Jobs != nil && len(req.Jobs) == 0 {
		return nil, f.record(&actors.FieldError{Field: "jobs", Msg: "must name at least one job type"})
	}
	seen := map[string]bool{}
	for i, name := range req.Jobs {
		if !fuzzJobTypes[name] || seen[name] {
			return nil, f.record(&actors.FieldError{Field: fmt.Sprintf("jobs[%d]", i), Msg: fmt.Sprintf("unknown or repeated job type %q", name)})
		}
		seen[name] = true
	}
	o := freshOrder()
	o.Parameters = req.Parameters
	o.NotifyURL = req.NotifyURL
	data, err := json.Marshal(o)
	if err != nil {
		// Parameters the API let through that are not JSON.
		return nil, f.record(fmt.Errorf("encode order: %w", err))
	}
	return data, f.record(nil)
}

func (f *fuzzService) Callback(_ context.Context, req actors.CallbackRequest) (order.Outcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.callback = req
	switch {
	case req.Token == "bad":
		return order.Outcome{}, f.record(fmt.Errorf("order %s job %s: %w", req.OrderID, req.JobID, actors.ErrUnauthorized))
	case req.OrderID == "gone":
		return order.Outcome{}, f.record(fmt.Errorf("order %s: %w", req.OrderID, actors.ErrNotFound))
	case req.JobID == "gone":
		return order.Outcome{}, f.record(fmt.Errorf("order %s: %w", req.OrderID, order.ErrUnknownJob))
	case req.OrderID == "done":
		return order.Outcome{}, f.record(fmt.Errorf("order %s: %w", req.OrderID, order.ErrOrderFinished))
	}
	out := order.Outcome{OrderID: req.OrderID, JobID: req.JobID, JobStatus: order.JobCompleted, OrderStatus: order.Running}
	if req.Failed {
		out.JobStatus, out.OrderStatus = order.JobFailed, order.Failed
	}
	return out, f.record(nil)
}

func (f *fuzzService) Get(context.Context, string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return nil, f.record(errors.New("fuzzService: unexpected Get"))
}

func (f *fuzzService) Cancel(context.Context, string, string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return nil, f.record(errors.New("fuzzService: unexpected Cancel"))
}

func (f *fuzzService) Retry(context.Context, string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return nil, f.record(errors.New("fuzzService: unexpected Retry"))
}

func (f *fuzzService) List(context.Context, persistence.Query) (persistence.Page, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return persistence.Page{}, f.record(errors.New("fuzzService: unexpected List"))
}

// state returns the call count and the last error.
func (f *fuzzService) state() (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, f.err
}

// statusOf is the status the API documents for an error of the fuzzService.
func statusOf(err error) int {
	var fe *actors.FieldError
	switch {
	case errors.As(err, &fe):
		return 400
	case errors.Is(err, actors.ErrUnauthorized):
		return 401
	case errors.Is(err, actors.ErrNotFound), errors.Is(err, order.ErrUnknownJob):
		return 404
	case errors.Is(err, order.ErrOrderFinished):
		return 409
	default:
		return 500
	}
}

// headerValue reports whether s can be sent as an HTTP header value:
// no control characters (RFC 9110 §5.5), which no HTTP client sends.
func headerValue(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f })
}

// fuzzExchange sends r to the fuzz server and checks everything that must
// hold for any input: no 5xx; a 2xx only if the service was called once and
// succeeded; a 4xx either from the service's own error (then with the status
// documented for it) or without calling it at all; every 4xx has the Error
// JSON; and the exchange conforms to the OpenAPI document. It returns the
// answer and whether the service was called.
func fuzzExchange(t *testing.T, base *apiClient, svc *fuzzService, r request) (response, bool) {
	t.Helper()
	api := &apiClient{t: t, c: base.c}
	before, _ := svc.state()
	resp := api.send(r)
	after, svcErr := svc.state()
	called := after - before

	switch {
	case called > 1:
		t.Fatalf("service called %d times for one request", called)
	case resp.status >= 500:
		t.Fatalf("answer %d %s", resp.status, resp.body)
	case resp.status < 300 && (called != 1 || svcErr != nil):
		t.Fatalf("answer %d, but the service was called %d times (last error %v)", resp.status, called, svcErr)
	case resp.status >= 400 && called == 1 && statusOf(svcErr) != resp.status:
		t.Fatalf("answer %d %s after the service was called and answered %v (documented as %d)", resp.status, resp.body, svcErr, statusOf(svcErr))
	}
	if resp.status >= 400 {
		decodeError(t, resp, resp.status)
	}
	for _, p := range theSpec(t).check(r, resp, nil) {
		t.Errorf("not as the OpenAPI document says: %v", p)
	}
	return resp, called == 1
}

// member returns the raw JSON of the object member named exactly name, or
// nil; it is an independent, case-sensitive reading of a request body.
func member(body []byte, name string) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return nil
	}
	return m[name]
}

func FuzzCreateRequest(f *testing.F) {
	for _, seed := range []struct{ body, contentType string }{
		{`{"parameters":{"customer":"c-42"}}`, "application/json"},
		{`{"parameters":{},"jobs":["BatchJobA","BatchJobB"],"deadlineMs":60000}`, "application/json; charset=utf-8"},
		{`{"parameters":{"a":[1,{"b":null}]},"jobs":[],"deadlineMs":2592000000,"notifyUrl":"https://example.com/hook"}`, "application/json"},
		{`{"parameters":{},"jobs":["BatchJobZ"]}`, "application/json"},
		{`{"parameters":{},"jobs":["BatchJobA","BatchJobA"]}`, "application/json"},
		{`{"parameters":{},"deadlineMs":1e3}`, "application/json"},
		{`{"parameters":{},"deadlineMs":18446744073710}`, "application/json"},
		{`{"parameters":{},"notifyUrl":"ftp://x"}`, "application/json"},
		{`{"parameters":[]}`, "application/json"},
		{`{"jobs":["BatchJobA"]}`, "application/json"},
		{`{"parameters":{},"extra":1}`, "application/json"},
		{`[{"parameters":{}}]`, "application/json"},
		{`{"parameters":`, "application/json"},
		{``, "application/json"},
		{`{"parameters":{}}`, "text/plain"},
		{`{"parameters":{}}`, ""},
		{`{"parameters":{}}`, "application/json;;"},
		{`{"parameters":{"pad":"` + strings.Repeat("x", fuzzBodyLimit) + `"}}`, "application/json"},
	} {
		f.Add([]byte(seed.body), seed.contentType)
	}
	svc := &fuzzService{}
	base := startServer(f, svc, httpapi.Config{BodyLimit: fuzzBodyLimit})

	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		if !headerValue(contentType) {
			t.Skip("not an HTTP header value")
		}
		r := request{method: "POST", path: ordersPath, contentType: contentType, body: string(body)}
		resp, called := fuzzExchange(t, base, svc, r)
		if !called || resp.status != 202 {
			return
		}
		// What the service got is what the body says.
		got := svc.submit
		var params bytes.Buffer
		if err := json.Compact(&params, member(body, "parameters")); err != nil || !bytes.Equal(params.Bytes(), got.Parameters) {
			t.Errorf("Parameters %s, but the body's parameters are %s", got.Parameters, member(body, "parameters"))
		}
		if got := resp.header["Location"]; got != ordersPath+"/o-1" {
			t.Errorf("Location %q", got)
		}
	})
}

func FuzzCallbackRequest(f *testing.F) {
	for _, seed := range []struct{ body, token string }{
		{`{"orderId":"o-1","jobId":"j-1","callbackToken":"tok"}`, ""},
		{`{"jobId":"j-1","orderId":"o-1","timeout":30,"callbackToken":"tok","status":"completed","result":{"rows":12}}`, ""},
		{`{"orderId":"o-1","jobId":"j-1","status":"failed","error":"boom"}`, "tok"},
		{`{"orderId":"o-1","jobId":"j-1","callbackToken":null,"status":null,"result":null,"error":null}`, "tok"},
		{`{"orderId":"o-1","jobId":"j-1","callbackToken":""}`, "bad"},
		{`{"orderId":"gone","jobId":"j-1"}`, ""},
		{`{"orderId":"o-1","jobId":"gone"}`, ""},
		{`{"orderId":"done","jobId":"j-1"}`, ""},
		{`{"orderId":"o-1","jobId":"j-1","status":"done"}`, ""},
		{`{"orderId":42,"jobId":"j-1"}`, ""},
		{`{"orderId":"","jobId":"j-1"}`, ""},
		{`{"orderId":"o-1"}`, ""},
		{`{"orderId":"o-1","jobId":"j-1","callbackToken":7}`, ""},
		{`[{"orderId":"o-1","jobId":"j-1"}]`, ""},
		{`{"orderId":"o-1",`, ""},
		{``, ""},
		{`{"orderId":"o-1","jobId":"j-1","result":"` + strings.Repeat("x", fuzzBodyLimit) + `"}`, ""},
	} {
		f.Add([]byte(seed.body), seed.token)
	}
	svc := &fuzzService{}
	base := startServer(f, svc, httpapi.Config{BodyLimit: fuzzBodyLimit})

	f.Fuzz(func(t *testing.T, body []byte, token string) {
		if !headerValue(token) {
			t.Skip("not an HTTP header value")
		}
		r := request{method: "POST", path: resultsPath, contentType: "application/json", body: string(body)}
		if token != "" {
			r.header = map[string]string{"X-Callback-Token": token}
		}
		resp, called := fuzzExchange(t, base, svc, r)
		if !called {
			return
		}
		// What the service got is what the body says, read independently
		// and case-sensitively.
		got := svc.callback
		str := func(name string) string {
			var s string
			_ = json.Unmarshal(member(body, name), &s)
			return s
		}
		if got.OrderID != str("orderId") || got.JobID != str("jobId") {
			t.Errorf("service got orderId %q jobId %q, but the body's are %s and %s", got.OrderID, got.JobID, member(body, "orderId"), member(body, "jobId"))
		}
		wantToken := str("callbackToken")
		if wantToken == "" {
			wantToken = strings.Trim(token, " \t")
		}
		if got.Token != wantToken {
			t.Errorf("service got token %q, want %q", got.Token, wantToken)
		}
		if got.Failed != (str("status") == "failed") {
			t.Errorf("service got failed %v, but the body's status is %s", got.Failed, member(body, "status"))
		}
		if resp.status == 200 {
			var answer struct{ OrderID, JobID string }
			if err := json.Unmarshal(resp.body, &answer); err != nil || answer.OrderID != got.OrderID || answer.JobID != got.JobID {
				t.Errorf("answer %s does not name the callback's order and job", resp.body)
			}
		}
	})
}
