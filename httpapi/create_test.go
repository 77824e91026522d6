package httpapi_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fanflow/fanflow/actors"
	"github.com/fanflow/fanflow/httpapi"
	"github.com/valyala/fasthttp"
)

const ordersPath = "/v1/parallelCallbacks"

func TestCreate_acceptedAnswersServiceJSONWithLocation(t *testing.T) {
	t.Parallel()
	svc := &fakeService{submitBody: []byte(`{"orderId":"o-1","status":"running","jobs":[]}`)}
	api := startServer(t, svc, httpapi.Config{})

	r := api.postJSON(ordersPath, `{
		"parameters": { "customer" : "c-9", "items": [ 1, 2 ] },
		"jobs": ["BatchJobA", "BatchJobB"],
		"deadlineMs": 60000
	}`)

	if r.status != fasthttp.StatusAccepted {
		t.Fatalf("status = %d, want 202; body %s", r.status, r.body)
	}
	if string(r.body) != string(svc.submitBody) {
		t.Errorf("body = %s, want the service's %s", r.body, svc.submitBody)
	}
	if got := r.header["Location"]; got != "/v1/parallelCallbacks/o-1" {
		t.Errorf("Location = %q, want /v1/parallelCallbacks/o-1", got)
	}
	if ct := r.header["Content-Type"]; ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	calls := svc.submitCalls()
	if len(calls) != 1 {
		t.Fatalf("Submit called %d times, want 1", len(calls))
	}
	got := calls[0]
	if want := `{"customer":"c-9","items":[1,2]}`; string(got.Parameters) != want {
		t.Errorf("Parameters = %s, want compacted %s", got.Parameters, want)
	}
	if want := []string{"BatchJobA", "BatchJobB"}; !slices.Equal(got.Jobs, want) {
		t.Errorf("Jobs = %q, want %q", got.Jobs, want)
	}
	if got.Deadline != time.Minute {
		t.Errorf("Deadline = %s, want 1m0s", got.Deadline)
	}
}

func TestCreate_validBodiesReachTheServiceAsSubmitRequests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		body         string
		wantParams   string
		wantJobs     []string // compared with nil-ness
		wantDeadline time.Duration
	}{
		{name: "only parameters leaves jobs nil and deadline zero (service defaults)",
			body: `{"parameters":{}}`, wantParams: `{}`, wantJobs: nil},
		{name: "empty jobs array stays empty, not nil (it must not mean all types)",
			body: `{"parameters":{},"jobs":[]}`, wantParams: `{}`, wantJobs: []string{}},
		{name: "smallest deadline is 1ms",
			body: `{"parameters":{},"deadlineMs":1}`, wantParams: `{}`, wantDeadline: time.Millisecond},
		{name: "largest deadline is 30 days",
			body: `{"parameters":{},"deadlineMs":2592000000}`, wantParams: `{}`, wantDeadline: 30 * 24 * time.Hour},
		{name: "nested parameters are passed through, only whitespace removed",
			body:       "{\"parameters\":{\"a\": {\"b\" :\t[true, null, \"x y\"]}}}",
			wantParams: `{"a":{"b":[true,null,"x y"]}}`},
		{name: "leading and trailing whitespace around the object is fine",
			body: " \n {\"parameters\":{\"k\":1}} \n ", wantParams: `{"k":1}`},
		{name: "parameters nested deeper than fastjson goes are read as encoding/json reads them",
			body:       `{"parameters":{"deep": ` + strings.Repeat("[", 400) + strings.Repeat("]", 400) + `}}`,
			wantParams: `{"deep":` + strings.Repeat("[", 400) + strings.Repeat("]", 400) + `}`},
		{name: "a repeated member counts by its last occurrence; escapes in nested values are kept",
			body: `{"parameters":{"k":1},"parameters":{"s":"\u00fc\n"}}`, wantParams: `{"s":"\u00fc\n"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			svc := &fakeService{submitBody: []byte(`{"orderId":"o-2"}`)}
			api := startServer(t, svc, httpapi.Config{})
			r := api.postJSON(ordersPath, tt.body)
			if r.status != fasthttp.StatusAccepted {
				t.Fatalf("status = %d, want 202; body %s", r.status, r.body)
			}
			calls := svc.submitCalls()
			if len(calls) != 1 {
				t.Fatalf("Submit called %d times, want 1", len(calls))
			}
			got := calls[0]
			if string(got.Parameters) != tt.wantParams {
				t.Errorf("Parameters = %s, want %s", got.Parameters, tt.wantParams)
			}
			if (got.Jobs == nil) != (tt.wantJobs == nil) || !slices.Equal(got.Jobs, tt.wantJobs) {
				t.Errorf("Jobs = %#v, want %#v", got.Jobs, tt.wantJobs)
			}
			if got.Deadline != tt.wantDeadline {
				t.Errorf("Deadline = %s, want %s", got.Deadline, tt.wantDeadline)
			}
		})
	}
}

func TestCreate_contentTypeWithCharsetIsAccepted(t *testing.T) {
	t.Parallel()
	svc := &fakeService{submitBody: []byte(`{"orderId":"o-3"}`)}
	api := startServer(t, svc, httpapi.Config{})
	r := api.do(request{method: fasthttp.MethodPost, path: ordersPath,
		contentType: "application/json; charset=utf-8", body: `{"parameters":{}}`})
	if r.status != fasthttp.StatusAccepted {
		t.Fatalf("status = %d, want 202; body %s", r.status, r.body)
	}
	if n := len(svc.submitCalls()); n != 1 {
		t.Errorf("Submit called %d times, want 1", n)
	}
}

// TestCreate_badInputIsRejectedAndChangesNothing covers every input the API
// itself must refuse: each gets the documented status and error JSON, a
// message naming the problem, and the service is never called.
func TestCreate_badInputIsRejectedAndChangesNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		contentType string
		body        string
		status      int
		code        string
		field       string
		word        string // must appear in the message
	}{
		{"wrong content type", "text/plain", `{"parameters":{}}`, 415, "unsupported_media_type", "Content-Type", "Content-Type"},
		{"form content type", "application/x-www-form-urlencoded", `{"parameters":{}}`, 415, "unsupported_media_type", "Content-Type", "application/json"},
		{"missing content type", "", `{"parameters":{}}`, 415, "unsupported_media_type", "Content-Type", "Content-Type"},
		{"malformed JSON", "application/json", `{"parameters":`, 400, "invalid_json", "", "JSON"},
		{"trailing garbage after the object", "application/json", `{"parameters":{}} x`, 400, "invalid_json", "", "JSON"},
		{"empty body", "application/json", ``, 400, "invalid_json", "", "empty"},
		{"body is an array", "application/json", `[{"parameters":{}}]`, 400, "invalid_body", "", "object"},
		{"body is a string", "application/json", `"parameters"`, 400, "invalid_body", "", "object"},
		{"body is a number", "application/json", `42`, 400, "invalid_body", "", "object"},
		{"body is null", "application/json", `null`, 400, "invalid_body", "", "object"},
		{"parameters missing", "application/json", `{"jobs":["BatchJobA"]}`, 400, "missing_field", "parameters", "parameters"},
		{"parameters is an array", "application/json", `{"parameters":[1,2]}`, 400, "invalid_field", "parameters", "parameters"},
		{"parameters is a string", "application/json", `{"parameters":"{}"}`, 400, "invalid_field", "parameters", "parameters"},
		{"parameters is null", "application/json", `{"parameters":null}`, 400, "invalid_field", "parameters", "parameters"},
		{"parameters is a number", "application/json", `{"parameters":7}`, 400, "invalid_field", "parameters", "parameters"},
		{"jobs is a string", "application/json", `{"parameters":{},"jobs":"BatchJobA"}`, 400, "invalid_field", "jobs", "jobs"},
		{"jobs holds a number", "application/json", `{"parameters":{},"jobs":[1]}`, 400, "invalid_field", "jobs", "jobs"},
		{"jobs holds an object", "application/json", `{"parameters":{},"jobs":[{"type":"BatchJobA"}]}`, 400, "invalid_field", "jobs", "jobs"},
		{"jobs is an object", "application/json", `{"parameters":{},"jobs":{"BatchJobA":true}}`, 400, "invalid_field", "jobs", "jobs"},
		{"jobs is null", "application/json", `{"parameters":{},"jobs":null}`, 400, "invalid_field", "jobs", "jobs"},
		{"deadlineMs zero", "application/json", `{"parameters":{},"deadlineMs":0}`, 400, "invalid_field", "deadlineMs", "deadlineMs"},
		{"deadlineMs negative", "application/json", `{"parameters":{},"deadlineMs":-1000}`, 400, "invalid_field", "deadlineMs", "deadlineMs"},
		{"deadlineMs fractional", "application/json", `{"parameters":{},"deadlineMs":1500.5}`, 400, "invalid_field", "deadlineMs", "deadlineMs"},
		{"deadlineMs a string", "application/json", `{"parameters":{},"deadlineMs":"60000"}`, 400, "invalid_field", "deadlineMs", "deadlineMs"},
		{"deadlineMs null", "application/json", `{"parameters":{},"deadlineMs":null}`, 400, "invalid_field", "deadlineMs", "deadlineMs"},
		{"deadlineMs one past 30 days", "application/json", `{"parameters":{},"deadlineMs":2592000001}`, 400, "invalid_field", "deadlineMs", "deadlineMs"},
		// 18446744073710 ms is 2^64 ns + 448384 ns: a check done on the
		// nanosecond Duration would wrap it to a 0.4ms deadline.
		{"deadlineMs that overflows a Duration", "application/json", `{"parameters":{},"deadlineMs":18446744073710}`, 400, "invalid_field", "deadlineMs", "deadlineMs"},
		{"deadlineMs beyond int64", "application/json", `{"parameters":{},"deadlineMs":99999999999999999999}`, 400, "invalid_field", "deadlineMs", "deadlineMs"},
		{"unknown top-level field", "application/json", `{"parameters":{},"callbackUrl":"http://x"}`, 400, "unknown_field", "callbackUrl", "callbackUrl"},
		{"member names match exactly", "application/json", `{"Parameters":{}}`, 400, "unknown_field", "Parameters", "Parameters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			svc := &fakeService{}
			api := startServer(t, svc, httpapi.Config{})
			r := api.do(request{method: fasthttp.MethodPost, path: ordersPath, contentType: tt.contentType, body: tt.body})
			checkError(t, r, tt.status, tt.code, tt.field, tt.word)
			svc.assertNoCalls(t)
		})
	}
}

func TestCreate_bodyOverTheLimitIs413WithErrorJSONAndChangesNothing(t *testing.T) {
	t.Parallel()
	const limit = 64
	svc := &fakeService{}
	api := startServer(t, svc, httpapi.Config{BodyLimit: limit})

	body := `{"parameters":{"pad":"` + strings.Repeat("x", 2*limit) + `"}}`
	r := api.postJSON(ordersPath, body)

	checkError(t, r, fasthttp.StatusRequestEntityTooLarge, "body_too_large", "", fmt.Sprint(limit))
	svc.assertNoCalls(t)

	// A body just under the limit still gets through: the limit is the one configured.
	small := `{"parameters":{}}`
	if r := api.postJSON(ordersPath, small); r.status != fasthttp.StatusAccepted {
		t.Errorf("body of %d bytes: status = %d, want 202; body %s", len(small), r.status, r.body)
	}
}

func TestCreate_unknownJobTypeFromServiceIs400NamingTheJob(t *testing.T) {
	t.Parallel()
	// Job types are the service's configuration, so this check reaches it
	// by design; the service answers with a FieldError and nothing is created.
	svc := &fakeService{submitErr: &actors.FieldError{Code: "unknown_job_type", Field: "jobs[0]", Msg: `unknown job type "BatchJobZ"`}}
	api := startServer(t, svc, httpapi.Config{})

	r := api.postJSON(ordersPath, `{"parameters":{},"jobs":["BatchJobZ"]}`)

	checkError(t, r, fasthttp.StatusBadRequest, "unknown_job_type", "jobs[0]", "BatchJobZ")
	if _, ok := r.header["Location"]; ok {
		t.Errorf("Location %q sent with an error", r.header["Location"])
	}
	calls := svc.submitCalls()
	if len(calls) != 1 || !slices.Equal(calls[0].Jobs, []string{"BatchJobZ"}) {
		t.Errorf("Submit calls = %+v, want one with Jobs [BatchJobZ]", calls)
	}
}

func TestCreate_serviceErrorsMapToStatuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		err        error
		status     int
		code       string
		field      string
		retryAfter bool
	}{
		{"wrapped field error on deadline", fmt.Errorf("submit: %w", &actors.FieldError{Field: "deadlineMs", Msg: "must be positive"}), 400, "invalid_field", "deadlineMs", false},
		{"store unavailable", fmt.Errorf("order o-1: create: %w", actors.ErrUnavailable), 503, "unavailable", "", true},
		{"client closed", actors.ErrClosed, 503, "unavailable", "", true},
		{"anything else", errors.New("boom"), 500, "internal", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			svc := &fakeService{submitErr: tt.err}
			api := startServer(t, svc, httpapi.Config{})
			r := api.postJSON(ordersPath, `{"parameters":{}}`)
			e := decodeError(t, r, tt.status)
			if e.Code != tt.code || e.Field != tt.field {
				t.Errorf("error = %+v, want code %q field %q", e, tt.code, tt.field)
			}
			if got, ok := r.header["Retry-After"]; ok != tt.retryAfter || (ok && got == "") {
				t.Errorf("Retry-After = %q (present %v), want present %v", got, ok, tt.retryAfter)
			}
			if _, ok := r.header["Location"]; ok {
				t.Errorf("Location %q sent with an error", r.header["Location"])
			}
		})
	}
}

func TestRoutes_wrongMethodIs405WithAllowAndChangesNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		method, path, allow string
	}{
		{fasthttp.MethodPut, ordersPath, "GET, POST"},
		{fasthttp.MethodDelete, ordersPath, "GET, POST"},
		{fasthttp.MethodGet, ordersPath + "/o-1/cancel", "POST"},
		{fasthttp.MethodGet, ordersPath + "/o-1/retry", "POST"},
		{fasthttp.MethodGet, ordersPath + "/results", "POST"},
		{fasthttp.MethodPost, ordersPath + "/o-1", "GET"},
		{fasthttp.MethodDelete, ordersPath + "/o-1", "GET"},
		{fasthttp.MethodPost, "/healthz", "GET"},
		{fasthttp.MethodPost, "/readyz", "GET"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			t.Parallel()
			svc := &fakeService{}
			api := startServer(t, svc, httpapi.Config{})
			r := api.do(request{method: tt.method, path: tt.path, contentType: "application/json", body: `{"parameters":{}}`})
			checkError(t, r, fasthttp.StatusMethodNotAllowed, "method_not_allowed", "", tt.method)
			if got := r.header["Allow"]; got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
			svc.assertNoCalls(t)
		})
	}
}

func TestRoutes_unknownRouteIs404JSON(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"/", "/v1", "/v2/parallelCallbacks", "/v1/parallelCallbacks/o-1/unknown", "/v1/parallelcallbacks"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			svc := &fakeService{}
			api := startServer(t, svc, httpapi.Config{})
			r := api.get(path)
			checkError(t, r, fasthttp.StatusNotFound, "route_not_found", "", path)
			svc.assertNoCalls(t)
		})
	}
}
