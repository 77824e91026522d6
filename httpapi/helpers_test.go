package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fanflow/fanflow/actors"
	"github.com/fanflow/fanflow/httpapi"
	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// testTimeout bounds every wait in these tests.
const testTimeout = 5 * time.Second

// fakeService is an httpapi.OrderService that records every call and
// answers with what the test configured before the server started.
type fakeService struct {
	// Answers, set before the server starts and not changed after.
	submitBody  []byte
	submitErr   error
	outcome     order.Outcome
	callbackErr error
	getBody     []byte
	getErr      error
	adminBody   []byte // answer of Cancel and Retry
	adminErr    error
	page        persistence.Page
	listErr     error

	mu        sync.Mutex
	submits   []actors.SubmitRequest
	callbacks []actors.CallbackRequest
	gets      []string
	admin     []string // "cancel <id> <reason>" or "retry <id>"
	lists     []persistence.Query
}

func (f *fakeService) Cancel(_ context.Context, id, reason string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.admin = append(f.admin, "cancel "+id+" "+reason)
	return f.adminBody, f.adminErr
}

func (f *fakeService) Retry(_ context.Context, id string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.admin = append(f.admin, "retry "+id)
	return f.adminBody, f.adminErr
}

func (f *fakeService) List(_ context.Context, q persistence.Query) (persistence.Page, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists = append(f.lists, q)
	return f.page, f.listErr
}

func (f *fakeService) adminCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.admin)
}

func (f *fakeService) listCalls() []persistence.Query {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.lists)
}

func (f *fakeService) Submit(_ context.Context, req actors.SubmitRequest) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.submits = append(f.submits, req)
	return f.submitBody, f.submitErr
}

func (f *fakeService) Callback(_ context.Context, req actors.CallbackRequest) (order.Outcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.callbacks = append(f.callbacks, req)
	return f.outcome, f.callbackErr
}

func (f *fakeService) Get(_ context.Context, id string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets = append(f.gets, id)
	return f.getBody, f.getErr
}

func (f *fakeService) submitCalls() []actors.SubmitRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.submits)
}

func (f *fakeService) callbackCalls() []actors.CallbackRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.callbacks)
}

func (f *fakeService) getCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.gets)
}

// assertNoCalls fails the test if the service was called at all: the
// request changed nothing.
func (f *fakeService) assertNoCalls(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.submits) + len(f.callbacks) + len(f.gets) + len(f.admin) + len(f.lists); n != 0 {
		t.Errorf("service got %d calls (submits %+v, callbacks %+v, gets %q, admin %q, lists %+v), want none",
			n, f.submits, f.callbacks, f.gets, f.admin, f.lists)
	}
}

// apiClient sends requests to one Server over an in-memory listener, and
// checks every exchange against the OpenAPI document (apiSpec.check).
type apiClient struct {
	t testing.TB
	c *fasthttp.Client
	// lenient names the operations whose order answers are canned by the
	// test's fakeService and incomplete (see lenientOps).
	lenient map[string]bool
}

// startServer serves httpapi.New(svc, cfg) on an in-memory listener until
// the test ends.
func startServer(t testing.TB, svc httpapi.OrderService, cfg httpapi.Config) *apiClient {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ln := fasthttputil.NewInmemoryListener()
	srv := httpapi.New(svc, cfg)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	c := &fasthttp.Client{
		Dial:                     func(string) (net.Conn, error) { return ln.Dial() },
		NoDefaultUserAgentHeader: true,
	}
	t.Cleanup(func() {
		c.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		_ = ln.Close() // in case Serve had not registered ln yet
		select {
		case <-served:
		case <-time.After(testTimeout):
			t.Errorf("Serve did not return within %s of Shutdown", testTimeout)
		}
	})
	return &apiClient{t: t, c: c, lenient: lenientOps(t, svc)}
}

// response is a copy of what the server answered.
type response struct {
	status int
	header map[string]string
	body   []byte
}

// request describes one request; zero fields are left out.
type request struct {
	method      string
	path        string
	contentType string // "" sends no Content-Type at all
	body        string
	header      map[string]string
}

// do sends r and fails the test if the exchange departs from the OpenAPI
// document (see apiSpec.check).
func (a *apiClient) do(r request) response {
	a.t.Helper()
	out := a.send(r)
	for _, p := range theSpec(a.t).check(r, out, a.lenient) {
		a.t.Errorf("%s %s: not as the OpenAPI document says: %v\nrequest body: %.300s\nanswer body: %.300s", r.method, r.path, p, r.body, out.body)
	}
	return out
}

// send sends r and returns the answer, unchecked.
func (a *apiClient) send(r request) response {
	a.t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://fanflow.test" + r.path)
	req.Header.SetMethod(r.method)
	req.Header.SetNoDefaultContentType(true)
	if r.contentType != "" {
		req.Header.SetContentType(r.contentType)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	if r.body != "" {
		req.SetBodyString(r.body)
	}
	if err := a.c.DoTimeout(req, resp, testTimeout); err != nil {
		a.t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	out := response{status: resp.StatusCode(), header: map[string]string{}, body: bytes.Clone(resp.Body())}
	for k, v := range resp.Header.All() {
		out.header[string(k)] = string(v)
	}
	return out
}

// postJSON posts body with Content-Type application/json.
func (a *apiClient) postJSON(path, body string) response {
	a.t.Helper()
	return a.do(request{method: fasthttp.MethodPost, path: path, contentType: "application/json", body: body})
}

func (a *apiClient) get(path string) response {
	a.t.Helper()
	return a.do(request{method: fasthttp.MethodGet, path: path})
}

// apiErr is the error object of DESIGN §3.
type apiErr struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

// decodeError checks that r is a JSON error answer of exactly the documented
// shape {"error":{"code","message","field"}} with the given status, and
// returns its error object.
func decodeError(t *testing.T, r response, wantStatus int) apiErr {
	t.Helper()
	if r.status != wantStatus {
		t.Errorf("status = %d, want %d; body %s", r.status, wantStatus, r.body)
	}
	if ct := r.header["Content-Type"]; ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var body struct {
		Error *apiErr `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("error body %s does not have the documented shape: %v", r.body, err)
	}
	if body.Error == nil {
		t.Fatalf("error body %s has no \"error\" object", r.body)
	}
	if body.Error.Code == "" || body.Error.Message == "" {
		t.Errorf("error body %s lacks a code or a message", r.body)
	}
	return *body.Error
}

// checkError checks an error answer's status, code, field, and that its
// message mentions word (case-insensitive).
func checkError(t *testing.T, r response, status int, code, field, word string) {
	t.Helper()
	e := decodeError(t, r, status)
	if e.Code != code {
		t.Errorf("code = %q, want %q", e.Code, code)
	}
	if e.Field != field {
		t.Errorf("field = %q, want %q", e.Field, field)
	}
	if !strings.Contains(strings.ToLower(e.Message), strings.ToLower(word)) {
		t.Errorf("message %q does not mention %q", e.Message, word)
	}
}
