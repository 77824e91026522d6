package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/fanflow/fanflow/actors"
	"github.com/fanflow/fanflow/httpapi"
	"github.com/fanflow/fanflow/order"
	"github.com/valyala/fasthttp"
)

const resultsPath = "/v1/parallelCallbacks/results"

func TestCallback_answers200WithExactlyTheOutcome(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		out  order.Outcome
		want map[string]any
	}{
		{
			name: "first callback",
			out:  order.Outcome{OrderID: "o-1", JobID: "j-1", JobStatus: order.JobCompleted, OrderStatus: order.Running},
			want: map[string]any{"orderId": "o-1", "jobId": "j-1", "jobStatus": "completed", "orderStatus": "running", "duplicate": false},
		},
		{
			name: "duplicate of the last job's failure",
			out:  order.Outcome{OrderID: "o-2", JobID: "j-9", JobStatus: order.JobFailed, OrderStatus: order.Failed, Duplicate: true},
			want: map[string]any{"orderId": "o-2", "jobId": "j-9", "jobStatus": "failed", "orderStatus": "failed", "duplicate": true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			svc := &fakeService{outcome: tt.out}
			api := startServer(t, svc, httpapi.Config{})
			r := api.postJSON(resultsPath, `{"orderId":"o-1","jobId":"j-1"}`)
			if r.status != fasthttp.StatusOK {
				t.Fatalf("status = %d, want 200; body %s", r.status, r.body)
			}
			if ct := r.header["Content-Type"]; ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			var got map[string]any
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatalf("body %s: %v", r.body, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("body = %v, want exactly %v", got, tt.want)
			}
		})
	}
}

func TestCallback_passesTheRequestToTheService(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		body   string
		header map[string]string
		want   actors.CallbackRequest
	}{
		{
			name: "echoed callout body with extra members, no status means completed",
			body: `{"jobId":"j-1","orderId":"o-1","timeout":30,"callbackToken":"tok-1"}`,
			want: actors.CallbackRequest{OrderID: "o-1", JobID: "j-1", Token: "tok-1"},
		},
		{
			name: "status completed with a result, compacted",
			body: `{"orderId":"o-1","jobId":"j-1","status":"completed","result": { "rows" : [1, 2] }}`,
			want: actors.CallbackRequest{OrderID: "o-1", JobID: "j-1", Result: json.RawMessage(`{"rows":[1,2]}`)},
		},
		{
			name: "status failed with an error",
			body: `{"orderId":"o-1","jobId":"j-1","status":"failed","error":{"code": "E42", "msg":"disk full"}}`,
			want: actors.CallbackRequest{OrderID: "o-1", JobID: "j-1", Failed: true, Error: json.RawMessage(`{"code":"E42","msg":"disk full"}`)},
		},
		{
			name: "status failed with a string error and a scalar result",
			body: `{"orderId":"o-1","jobId":"j-1","status":"failed","error":"boom","result":7}`,
			want: actors.CallbackRequest{OrderID: "o-1", JobID: "j-1", Failed: true, Error: json.RawMessage(`"boom"`), Result: json.RawMessage(`7`)},
		},
		{
			name: "a repeated member counts by its last occurrence; names are exact",
			body: `{"orderId":"o-0","OrderId":"o-x","orderId":"o-1","jobId":"j-1","Status":"failed"}`,
			want: actors.CallbackRequest{OrderID: "o-1", JobID: "j-1"},
		},
		{
			name: "escaped ids and names are read as encoding/json reads them",
			body: "{\"order\\u0049d\":\"o-\\u0031\",\"jobId\":\"j-\u00fc\\n\xff\",\"result\":{\"s\" : \"\\u00fc \\\"q\\\"\"}}",
			want: actors.CallbackRequest{OrderID: "o-1", JobID: "j-\u00fc\n\ufffd", Result: json.RawMessage(`{"s":"\u00fc \"q\""}`)},
		},
		{
			name: "a result nested deeper than fastjson goes is read as encoding/json reads it",
			body: `{"orderId":"o-1","jobId":"j-1","result": ` + strings.Repeat("[", 400) + strings.Repeat("]", 400) + `}`,
			want: actors.CallbackRequest{OrderID: "o-1", JobID: "j-1", Result: json.RawMessage(strings.Repeat("[", 400) + strings.Repeat("]", 400))},
		},
		{
			name: "null status, result and error are absent",
			body: `{"orderId":"o-1","jobId":"j-1","status":null,"result":null,"error":null}`,
			want: actors.CallbackRequest{OrderID: "o-1", JobID: "j-1"},
		},
		{
			name:   "token from header when the body has none",
			body:   `{"orderId":"o-1","jobId":"j-1"}`,
			header: map[string]string{"X-Callback-Token": "tok-h"},
			want:   actors.CallbackRequest{OrderID: "o-1", JobID: "j-1", Token: "tok-h"},
		},
		{
			name:   "token from header when the body's is null",
			body:   `{"orderId":"o-1","jobId":"j-1","callbackToken":null}`,
			header: map[string]string{"X-Callback-Token": "tok-h"},
			want:   actors.CallbackRequest{OrderID: "o-1", JobID: "j-1", Token: "tok-h"},
		},
		{
			name:   "body token wins over header token",
			body:   `{"orderId":"o-1","jobId":"j-1","callbackToken":"tok-b"}`,
			header: map[string]string{"X-Callback-Token": "tok-h"},
			want:   actors.CallbackRequest{OrderID: "o-1", JobID: "j-1", Token: "tok-b"},
		},
		{
			name: "no token at all passes an empty one (the service decides)",
			body: `{"orderId":"o-1","jobId":"j-1"}`,
			want: actors.CallbackRequest{OrderID: "o-1", JobID: "j-1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			svc := &fakeService{outcome: order.Outcome{OrderID: "o-1", JobID: "j-1", JobStatus: order.JobCompleted, OrderStatus: order.Running}}
			api := startServer(t, svc, httpapi.Config{})
			r := api.do(request{method: fasthttp.MethodPost, path: resultsPath, contentType: "application/json", body: tt.body, header: tt.header})
			if r.status != fasthttp.StatusOK {
				t.Fatalf("status = %d, want 200; body %s", r.status, r.body)
			}
			calls := svc.callbackCalls()
			if len(calls) != 1 {
				t.Fatalf("Callback called %d times, want 1", len(calls))
			}
			if got := calls[0]; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("CallbackRequest = %s, want %s", fmtCallback(got), fmtCallback(tt.want))
			}
		})
	}
}

func fmtCallback(r actors.CallbackRequest) string {
	return fmt.Sprintf("{OrderID:%q JobID:%q Token:%q Failed:%v Result:%s Error:%s}",
		r.OrderID, r.JobID, r.Token, r.Failed, r.Result, r.Error)
}

func TestCallback_badInputIs4xxAndChangesNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		contentType string
		body        string
		status      int
		code        string
		field       string
		word        string
	}{
		{"wrong content type", "text/plain", `{"orderId":"o-1","jobId":"j-1"}`, 415, "unsupported_media_type", "Content-Type", "Content-Type"},
		{"missing content type", "", `{"orderId":"o-1","jobId":"j-1"}`, 415, "unsupported_media_type", "Content-Type", "Content-Type"},
		{"malformed JSON", "application/json", `{"orderId":"o-1",`, 400, "invalid_json", "", "JSON"},
		{"body is an array", "application/json", `[{"orderId":"o-1","jobId":"j-1"}]`, 400, "invalid_body", "", "object"},
		{"missing orderId", "application/json", `{"jobId":"j-1"}`, 400, "missing_field", "orderId", "orderId"},
		{"null orderId", "application/json", `{"orderId":null,"jobId":"j-1"}`, 400, "missing_field", "orderId", "orderId"},
		{"orderId a number", "application/json", `{"orderId":42,"jobId":"j-1"}`, 400, "invalid_field", "orderId", "orderId"},
		{"orderId empty", "application/json", `{"orderId":"","jobId":"j-1"}`, 400, "invalid_field", "orderId", "orderId"},
		{"missing jobId", "application/json", `{"orderId":"o-1"}`, 400, "missing_field", "jobId", "jobId"},
		{"jobId an object", "application/json", `{"orderId":"o-1","jobId":{"id":"j-1"}}`, 400, "invalid_field", "jobId", "jobId"},
		{"jobId empty", "application/json", `{"orderId":"o-1","jobId":""}`, 400, "invalid_field", "jobId", "jobId"},
		{"callbackToken a number", "application/json", `{"orderId":"o-1","jobId":"j-1","callbackToken":123}`, 400, "invalid_field", "callbackToken", "callbackToken"},
		{"unknown status value", "application/json", `{"orderId":"o-1","jobId":"j-1","status":"done"}`, 400, "invalid_field", "status", "status"},
		{"status in another case", "application/json", `{"orderId":"o-1","jobId":"j-1","status":"FAILED"}`, 400, "invalid_field", "status", "status"},
		{"status a boolean", "application/json", `{"orderId":"o-1","jobId":"j-1","status":true}`, 400, "invalid_field", "status", "status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			svc := &fakeService{}
			api := startServer(t, svc, httpapi.Config{})
			r := api.do(request{method: fasthttp.MethodPost, path: resultsPath, contentType: tt.contentType, body: tt.body})
			checkError(t, r, tt.status, tt.code, tt.field, tt.word)
			svc.assertNoCalls(t)
		})
	}
}

func TestCallback_serviceErrorsMapToDocumentedStatuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		err        error
		status     int
		code       string
		field      string
		retryAfter bool
	}{
		{"unknown order", fmt.Errorf("order o-1: %w", actors.ErrNotFound), 404, "order_not_found", "orderId", false},
		{"job not in the order", fmt.Errorf("order o-1: %w", order.ErrUnknownJob), 404, "job_not_found", "jobId", false},
		{"missing or wrong token", fmt.Errorf("order o-1 job j-1: %w", actors.ErrUnauthorized), 401, "unauthorized", "callbackToken", false},
		{"order already finished", fmt.Errorf("order o-1: %w", order.ErrOrderFinished), 409, "order_finished", "", false},
		{"job finished with another status", order.ErrJobConflict, 409, "job_conflict", "status", false},
		{"store unreachable", fmt.Errorf("order o-1: callback: %w", actors.ErrUnavailable), 503, "unavailable", "", true},
		{"client closed", actors.ErrClosed, 503, "unavailable", "", true},
		{"invalid without a field", fmt.Errorf("order o-1: %w: already created", actors.ErrInvalid), 400, "invalid_request", "", false},
		{"unexpected error", errors.New("boom"), 500, "internal", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			svc := &fakeService{callbackErr: tt.err}
			api := startServer(t, svc, httpapi.Config{})
			r := api.postJSON(resultsPath, `{"orderId":"o-1","jobId":"j-1","callbackToken":"tok"}`)
			e := decodeError(t, r, tt.status)
			if e.Code != tt.code || e.Field != tt.field {
				t.Errorf("error = %+v, want code %q field %q", e, tt.code, tt.field)
			}
			if got, ok := r.header["Retry-After"]; ok != tt.retryAfter || (ok && got == "") {
				t.Errorf("Retry-After = %q (present %v), want present %v", got, ok, tt.retryAfter)
			}
			if n := len(svc.callbackCalls()); n != 1 {
				t.Errorf("Callback called %d times, want 1", n)
			}
		})
	}
}

// recordingHandler is a slog.Handler that keeps the messages it receives.
type recordingHandler struct {
	mu   sync.Mutex
	msgs []string
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Message)
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordingHandler) messages() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.msgs)
}

func TestCallback_serverFaultsAreLoggedCallerFaultsAreNot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		err     error
		wantLog bool
	}{
		{"503 is logged", actors.ErrUnavailable, true},
		{"500 is logged", errors.New("boom"), true},
		{"404 is not logged", actors.ErrNotFound, false},
		{"401 is not logged", actors.ErrUnauthorized, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := &recordingHandler{}
			api := startServer(t, &fakeService{callbackErr: tt.err}, httpapi.Config{Logger: slog.New(h)})
			api.postJSON(resultsPath, `{"orderId":"o-1","jobId":"j-1"}`)
			if got := h.messages(); (len(got) > 0) != tt.wantLog {
				t.Errorf("logged %q, want a log line: %v", got, tt.wantLog)
			}
		})
	}
}

func TestCallback_internalErrorTextStaysInTheLog(t *testing.T) {
	t.Parallel()
	svc := &fakeService{callbackErr: errors.New("secret internal detail")}
	api := startServer(t, svc, httpapi.Config{})
	r := api.postJSON(resultsPath, `{"orderId":"o-1","jobId":"j-1"}`)
	e := decodeError(t, r, 500)
	if strings.Contains(e.Message, "secret internal detail") {
		t.Fatalf("500 answer exposes the internal error: %q", e.Message)
	}
}

func TestCallback_emptyBodyTokenDefersToHeader(t *testing.T) {
	t.Parallel()
	svc := &fakeService{outcome: order.Outcome{OrderID: "o-1", JobID: "j-1", JobStatus: order.JobCompleted, OrderStatus: order.Running}}
	api := startServer(t, svc, httpapi.Config{})
	r := api.do(request{method: "POST", path: resultsPath, contentType: "application/json",
		body: `{"orderId":"o-1","jobId":"j-1","callbackToken":""}`, header: map[string]string{"X-Callback-Token": "from-header"}})
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if calls := svc.callbackCalls(); len(calls) != 1 || calls[0].Token != "from-header" {
		t.Fatalf("calls = %+v, want one with the header's token", calls)
	}
}

func TestCallback_memberNamesMatchExactly(t *testing.T) {
	t.Parallel()
	for body, field := range map[string]string{
		`{"ORDERID":"o-1","jobId":"j-1"}`:                   "orderId",
		`{"orderId":"o-1","JobId":"j-1"}`:                   "jobId",
		`{"orderId":"o-1","jobId":"j-1","Status":"failed"}`: "",
	} {
		svc := &fakeService{outcome: order.Outcome{OrderID: "o-1", JobID: "j-1", JobStatus: order.JobCompleted, OrderStatus: order.Running}}
		api := startServer(t, svc, httpapi.Config{})
		r := api.postJSON(resultsPath, body)
		if field != "" {
			checkError(t, r, 400, "missing_field", field, field)
			svc.assertNoCalls(t)
			continue
		}
		if calls := svc.callbackCalls(); r.status != 200 || len(calls) != 1 || calls[0].Failed {
			t.Errorf("%s: status %d, calls %+v; want a completed callback (Status is not status)", body, r.status, calls)
		}
	}
}
