package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fanflow/fanflow/actors"
	"github.com/fanflow/fanflow/httpapi"
	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// apiSpec is the embedded OpenAPI document (httpapi.OpenAPI), loaded once
// and shared, read-only, by every test: apiClient.do checks each exchange
// against it.
type apiSpec struct {
	doc    *openapi3.T
	router routers.Router
	// relaxed routes a copy of the document in which no member of Order or
	// Job is required and Location has no pattern. It only judges the 2xx
	// answers of operations whose canned order, set by the test on its
	// fakeService, is not a complete Order (see lenientOps): the server
	// passes the service's bytes through verbatim, so such an answer
	// describes the fake, not the server. Types, enums, nullability and
	// unknown members are still checked.
	relaxed routers.Router
}

// loadSpec loads and validates the document once.
var loadSpec = sync.OnceValues(func() (*apiSpec, error) {
	doc, err := loadDoc()
	if err != nil {
		return nil, err
	}
	relaxedDoc, err := loadDoc()
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"Order", "Job"} {
		relaxedDoc.Components.Schemas[name].Value.Required = nil
	}
	relaxedDoc.Components.Headers["Location"].Value.Schema.Value.Pattern = ""
	s := &apiSpec{doc: doc}
	if s.router, err = gorillamux.NewRouter(doc); err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	if s.relaxed, err = gorillamux.NewRouter(relaxedDoc); err != nil {
		return nil, fmt.Errorf("relaxed router: %w", err)
	}
	return s, nil
})

// loadDoc parses httpapi.OpenAPI and validates it as an OpenAPI 3.0
// document, examples included.
func loadDoc() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(httpapi.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("openapi.json does not load: %w", err)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableExamplesValidation(), openapi3.EnableSchemaDefaultsValidation(),
		openapi3.EnableSchemaPatternValidation()); err != nil {
		return nil, fmt.Errorf("openapi.json is not a valid OpenAPI document: %w", err)
	}
	return doc, nil
}

// theSpec returns the loaded document or stops the test.
func theSpec(t testing.TB) *apiSpec {
	t.Helper()
	s, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// orderOps are the operations whose 2xx body is an order passed through
// from the service.
var orderOps = []string{"createOrder", "getOrder", "cancelOrder", "retryOrder", "listOrders"}

// lenientOps returns the operations of orderOps for which svc, a
// fakeService, would answer an order that is not a complete Order of the
// document (a test's abbreviated canned body, or none at all). Any other
// service gets none: everything is checked strictly.
func lenientOps(t testing.TB, svc httpapi.OrderService) map[string]bool {
	f, ok := svc.(*fakeService)
	if !ok {
		return nil
	}
	s := theSpec(t)
	incomplete := func(err error, bodies ...[]byte) bool {
		if err != nil {
			return false // the answer is an error, checked strictly
		}
		for _, b := range bodies {
			if s.checkSchema("Order", b) != nil {
				return true
			}
		}
		return false
	}
	records := make([][]byte, len(f.page.Records))
	for i, r := range f.page.Records {
		records[i] = r.Data
	}
	lenient := map[string]bool{
		"createOrder": incomplete(f.submitErr, f.submitBody),
		"getOrder":    incomplete(f.getErr, f.getBody),
		"cancelOrder": incomplete(f.adminErr, f.adminBody),
		"retryOrder":  incomplete(f.adminErr, f.adminBody),
		"listOrders":  incomplete(f.listErr, records...),
	}
	maps.DeleteFunc(lenient, func(_ string, v bool) bool { return !v })
	return lenient
}

// schemaOptions make problems name the value's path and the rule it breaks,
// without printing the whole schema and value.
var schemaOptions = []openapi3.SchemaValidationOption{openapi3.MultiErrors(), openapi3.DisableSchemaErrorDetails()}

// checkSchema validates JSON data against the named component schema.
func (s *apiSpec) checkSchema(name string, data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return s.doc.Components.Schemas[name].Value.VisitJSON(v, schemaOptions...)
}

// httpRequest is r as net/http sees it, for the validator.
func (r request) httpRequest() (*http.Request, error) {
	req, err := http.NewRequest(r.method, "http://fanflow.test"+r.path, strings.NewReader(r.body))
	if err != nil {
		return nil, err
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	return req, nil
}

func (r response) httpHeader() http.Header {
	h := make(http.Header, len(r.header))
	for k, v := range r.header {
		h.Set(k, v)
	}
	return h
}

// check validates one exchange with the server against the document and
// returns every way in which it departs from it; nil means it conforms.
//
//   - A path the document does not have (an unknown route, a route served by
//     Config.Extra) is not checked.
//   - A method the path does not have must be answered 405 with the Error
//     body and an Allow header naming exactly the path's methods.
//   - Otherwise the answer is always checked: its status must be documented
//     for the operation, and its headers, Content-Type and body must match.
//     lenient names the operations whose 2xx order bodies are canned by a
//     test's fake (see apiSpec.relaxed).
//   - The request is checked too, but a request the document forbids is
//     only a problem if the server did not refuse it with a 4xx: tests send
//     malformed requests on purpose, and the API must refuse them.
func (s *apiSpec) check(r request, resp response, lenient map[string]bool) []error {
	req, err := r.httpRequest()
	if err != nil {
		return []error{fmt.Errorf("cannot build the request for validation: %w", err)}
	}
	route, params, err := s.router.FindRoute(req)
	switch {
	case errors.Is(err, routers.ErrPathNotFound):
		return nil
	case errors.Is(err, routers.ErrMethodNotAllowed):
		return s.checkMethodNotAllowed(req, resp)
	case err != nil:
		return []error{fmt.Errorf("routing: %w", err)}
	}
	ctx := context.Background()
	var problems []error

	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true, SchemaValidationOptions: schemaOptions}}
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil && !unjudgeable(err) && (resp.status < 400 || resp.status >= 500) {
		problems = append(problems, fmt.Errorf("the document forbids this request, yet the server answered %d: %w", resp.status, err))
	}

	err = validateResponse(ctx, r, route, params, resp, false)
	if err != nil && resp.status < 300 && lenient[route.Operation.OperationID] && slices.Contains(orderOps, route.Operation.OperationID) {
		// The body is the test's canned order: judge it by the relaxed
		// document; an empty one (no canned body at all) is not judged.
		req, _ := r.httpRequest()
		if rroute, rparams, rerr := s.relaxed.FindRoute(req); rerr == nil {
			err = validateResponse(ctx, r, rroute, rparams, resp, len(resp.body) == 0)
		}
	}
	if err != nil && !unjudgeable(err) {
		problems = append(problems, fmt.Errorf("answer %d: %w", resp.status, err))
	}
	return problems
}

// unjudgeable reports whether err says the validator could not read a JSON
// number: it decodes numbers as float64, and a valid JSON number such as
// 1e999 is out of its range. The document does not forbid such a number
// (a result or parameters may hold any JSON), so it is no problem.
func unjudgeable(err error) bool {
	var ne *strconv.NumError
	return errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange)
}

// validateResponse validates resp as the answer to r on route.
func validateResponse(ctx context.Context, r request, route *routers.Route, params map[string]string, resp response, excludeBody bool) error {
	req, err := r.httpRequest()
	if err != nil {
		return err
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 resp.status,
		Header:                 resp.httpHeader(),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, ExcludeResponseBody: excludeBody,
			SchemaValidationOptions: schemaOptions},
	}
	in.SetBodyBytes(resp.body)
	return openapi3filter.ValidateResponse(ctx, in)
}

// checkMethodNotAllowed checks the answer to a method the path does not have.
func (s *apiSpec) checkMethodNotAllowed(req *http.Request, resp response) []error {
	var problems []error
	if resp.status != http.StatusMethodNotAllowed {
		problems = append(problems, fmt.Errorf("%s is not a method of %s in the document, yet the server answered %d, not 405", req.Method, req.URL.Path, resp.status))
	}
	if ct := resp.header["Content-Type"]; ct != "application/json" {
		problems = append(problems, fmt.Errorf("405 answer has Content-Type %q, want application/json", ct))
	}
	if err := s.checkSchema("Error", resp.body); err != nil {
		problems = append(problems, fmt.Errorf("405 answer body %s is not an Error: %w", resp.body, err))
	}
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions} {
		probe := req.Clone(context.Background())
		probe.Method = m
		if _, _, err := s.router.FindRoute(probe); err == nil {
			allowed = append(allowed, m)
		}
	}
	if got, want := resp.header["Allow"], strings.Join(allowed, ", "); got != want {
		problems = append(problems, fmt.Errorf("405 answer has Allow %q, but the document's methods of %s are %q", got, req.URL.Path, want))
	}
	return problems
}

func TestOpenAPI_documentIsAValidOpenAPI3Document(t *testing.T) {
	t.Parallel()
	doc, err := loadDoc()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0.") {
		t.Errorf("openapi = %q, want 3.0.x", doc.OpenAPI)
	}
	// Every operation has an id and documents every answer it can give.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.OperationID == "" {
				t.Errorf("%s %s has no operationId", method, path)
			}
			if op.Responses.Value("405") == nil {
				t.Errorf("%s %s does not document 405", method, path)
			}
		}
	}
}

func TestOpenAPI_servedAtOpenapiJSON(t *testing.T) {
	t.Parallel()
	api := startServer(t, &fakeService{}, httpapi.Config{})
	r := api.get("/openapi.json")
	if r.status != http.StatusOK || !bytes.Equal(r.body, httpapi.OpenAPI) {
		t.Fatalf("GET /openapi.json: status %d, body of %d bytes, want 200 and the embedded document", r.status, len(r.body))
	}
}

// TestOpenAPI_everyServerRouteIsDocumented names every method and path the
// server routes (server.go) and checks the document has each, and that
// nothing else is documented.
func TestOpenAPI_everyServerRouteIsDocumented(t *testing.T) {
	t.Parallel()
	s := theSpec(t)
	routes := map[string]string{ // "METHOD path" the server serves → operationId
		"POST /v1/parallelCallbacks":            "createOrder",
		"GET /v1/parallelCallbacks":             "listOrders",
		"POST /v1/parallelCallbacks/results":    "recordCallback",
		"GET /v1/parallelCallbacks/o-1":         "getOrder",
		"POST /v1/parallelCallbacks/o-1/cancel": "cancelOrder",
		"POST /v1/parallelCallbacks/o-1/retry":  "retryOrder",
		"GET /healthz":                          "healthz",
		"GET /readyz":                           "readyz",
		"GET /metrics":                          "metrics",
		"GET /openapi.json":                     "openapi",
	}
	documented := map[string]bool{}
	for _, item := range s.doc.Paths.Map() {
		for _, op := range item.Operations() {
			documented[op.OperationID] = true
		}
	}
	for mp, id := range routes {
		method, path, _ := strings.Cut(mp, " ")
		req, _ := http.NewRequest(method, "http://fanflow.test"+path, nil)
		route, _, err := s.router.FindRoute(req)
		if err != nil {
			t.Errorf("%s: not in the document: %v", mp, err)
			continue
		}
		if route.Operation.OperationID != id {
			t.Errorf("%s: routed to %q, want %q", mp, route.Operation.OperationID, id)
		}
		delete(documented, id)
	}
	if len(documented) > 0 {
		t.Errorf("the document has operations the server does not route: %v", slices.Sorted(maps.Keys(documented)))
	}
}

// jsonMembers returns the JSON member names of a struct type, from its tags.
func jsonMembers(typ reflect.Type) []string {
	var names []string
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.IsExported() && name != "-" {
			if name == "" {
				name = f.Name
			}
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// requiredMembers returns the members a struct type always writes: those
// without omitempty.
func requiredMembers(typ reflect.Type) []string {
	var names []string
	for f := range typ.Fields() {
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.IsExported() && name != "-" && !slices.Contains(strings.Split(opts, ","), "omitempty") {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// TestOpenAPI_schemasMirrorTheOrderPackage checks that the document's
// schemas have exactly the members, required members and enums of the Go
// types whose JSON the API serves, so that a change to order.Order that is
// not made in openapi.json fails here.
func TestOpenAPI_schemasMirrorTheOrderPackage(t *testing.T) {
	t.Parallel()
	s := theSpec(t)
	for name, typ := range map[string]reflect.Type{
		"Order":        reflect.TypeFor[order.Order](),
		"Job":          reflect.TypeFor[order.Job](),
		"Delivery":     reflect.TypeFor[order.Delivery](),
		"LateCallback": reflect.TypeFor[order.LateCallback](),
		"OrderError":   reflect.TypeFor[order.Error](),
	} {
		schema := s.doc.Components.Schemas[name].Value
		if got, want := slices.Sorted(maps.Keys(schema.Properties)), jsonMembers(typ); !slices.Equal(got, want) {
			t.Errorf("schema %s has members %q, %s has %q", name, got, typ, want)
		}
		if got, want := slices.Sorted(slices.Values(schema.Required)), requiredMembers(typ); !slices.Equal(got, want) {
			t.Errorf("schema %s requires %q, %s always writes %q", name, got, typ, want)
		}
		if ap := schema.AdditionalProperties.Has; ap == nil || *ap {
			t.Errorf("schema %s allows members %s does not have", name, typ)
		}
	}

	enum := func(schema string) []string {
		var out []string
		for _, v := range s.doc.Components.Schemas[schema].Value.Enum {
			out = append(out, v.(string))
		}
		return out
	}
	var statuses, jobStatuses []string
	for st := order.Status(1); !strings.HasPrefix(st.String(), "Status("); st++ {
		statuses = append(statuses, st.String())
	}
	for st := order.JobStatus(1); !strings.HasPrefix(st.String(), "JobStatus("); st++ {
		jobStatuses = append(jobStatuses, st.String())
	}
	deliveries := []string{string(order.DeliveryPending), string(order.DeliverySucceeded), string(order.DeliveryFailed)}
	for schema, want := range map[string][]string{"OrderStatus": statuses, "JobStatus": jobStatuses, "DeliveryStatus": deliveries} {
		if got := enum(schema); !slices.Equal(got, want) {
			t.Errorf("%s enum %q, want %q", schema, got, want)
		}
	}
}

// fullOrder is an order with every optional member set.
func fullOrder() order.Order {
	at := time.Date(2025, 11, 26, 21, 40, 0, 123456789, time.UTC)
	later := at.Add(time.Minute)
	return order.Order{
		Schema: order.SchemaVersion, OrderID: "o-1", Status: order.Failed, Parameters: json.RawMessage(`{"customer":"c-42"}`),
		Jobs: []order.Job{
			{JobID: "j-1", Type: "BatchJobA", Endpoint: "/v1/batchJobA", Timeout: 30, CancelEndpoint: "/v1/batchJobA/cancel",
				Status: order.JobProcessing, Attempts: 3, FirstAttempt: 2, RetryAt: &later,
				LateCallback: &order.LateCallback{At: later, Status: order.JobCompleted, Result: json.RawMessage(`{"rows":1}`), Error: json.RawMessage(`"x"`)},
				Compensation: &order.Delivery{Status: order.DeliveryFailed, Attempts: 5, At: &later, Error: "HTTP 500"}},
			{JobID: "j-2", Type: "BatchJobB", Endpoint: "/v1/batchJobB", Timeout: 20, Status: order.JobFailed, Attempts: 1,
				Result: json.RawMessage(`[1,"two",null]`), Error: json.RawMessage(`{"code":"E42"}`), CompletedAt: &later},
		},
		CreatedAt: at, UpdatedAt: later, Deadline: at.Add(9 * time.Minute), CompletedAt: &later,
		Error:     &order.Error{Code: "job_failed", Message: "job j-2 (BatchJobB) reported failure"},
		NotifyURL: "https://example.com/hook", Notification: &order.Delivery{Status: order.DeliverySucceeded, Attempts: 1, At: &later},
		IdempotencyKey: "key-1", Retries: 1, Version: 7,
	}
}

// freshOrder is an order as it is created: every optional member unset.
func freshOrder() order.Order {
	at := time.Date(2025, 11, 26, 21, 40, 0, 0, time.UTC)
	return order.Order{Schema: order.SchemaVersion, OrderID: "o-1", Status: order.Running, Parameters: json.RawMessage(`{}`),
		Jobs:      []order.Job{{JobID: "j-1", Type: "BatchJobA", Endpoint: "/v1/batchJobA", Timeout: 30, Status: order.JobPending, Attempts: 1}},
		CreatedAt: at, UpdatedAt: at, Deadline: at.Add(9 * time.Minute), Version: 1}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenAPI_orderJSONIsAnOrder(t *testing.T) {
	t.Parallel()
	s := theSpec(t)
	for name, o := range map[string]order.Order{"every member set": fullOrder(), "as created": freshOrder()} {
		if err := s.checkSchema("Order", mustJSON(t, o)); err != nil {
			t.Errorf("%s: %s does not match the Order schema: %v", name, mustJSON(t, o), err)
		}
	}
}

// withMember returns the JSON object data with member name set to value
// (raw JSON), or removed when value is "".
func withMember(t testing.TB, data []byte, path []string, value string) []byte {
	t.Helper()
	var root map[string]any
	if err := json.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	m := root
	for _, p := range path[:len(path)-1] {
		switch next := m[p].(type) {
		case map[string]any:
			m = next
		case []any:
			m = next[0].(map[string]any)
		default:
			t.Fatalf("no object at %q in %s", p, data)
		}
	}
	last := path[len(path)-1]
	if value == "" {
		delete(m, last)
	} else {
		var v any
		if err := json.Unmarshal([]byte(value), &v); err != nil {
			t.Fatal(err)
		}
		m[last] = v
	}
	return mustJSON(t, root)
}

// TestOpenAPI_validatorCatchesWrongAnswers proves the check that
// apiClient.do runs finds what it is there to find: each case is an answer
// (from a real server with a fake service, or made up) that departs from the
// document in one way.
func TestOpenAPI_validatorCatchesWrongAnswers(t *testing.T) {
	t.Parallel()
	s := theSpec(t)
	good := mustJSON(t, freshOrder())
	jsonHeader := map[string]string{"Content-Type": "application/json"}
	errBody := `{"error":{"code":"order_not_found","message":"no order o-1","field":"orderId"}}`
	get := request{method: "GET", path: ordersPath + "/o-1"}
	create := request{method: "POST", path: ordersPath, contentType: "application/json", body: `{"parameters":{}}`}

	// Served by a real Server: a fake service whose order lacks "status".
	t.Run("served order without status", func(t *testing.T) {
		t.Parallel()
		api := startServer(t, &fakeService{getBody: withMember(t, good, []string{"status"}, "")}, httpapi.Config{})
		resp := api.send(get)
		if resp.status != 200 {
			t.Fatalf("status %d", resp.status)
		}
		problems := s.check(get, resp, nil)
		if len(problems) == 0 || !strings.Contains(fmt.Sprint(problems), `"status"`) {
			t.Fatalf("problems %v, want one about the missing status", problems)
		}
	})
	// The same request with a complete order is fine: the cases below fail
	// for their one flaw.
	t.Run("served complete order", func(t *testing.T) {
		t.Parallel()
		api := startServer(t, &fakeService{getBody: good}, httpapi.Config{})
		if problems := s.check(get, api.send(get), nil); len(problems) > 0 {
			t.Fatalf("a complete order fails: %v", problems)
		}
	})

	tests := []struct {
		name string
		req  request
		resp response
		want string // in the problems
	}{
		{"job status not in the enum", get, response{200, jsonHeader, withMember(t, good, []string{"jobs", "status"}, `"done"`)}, "/jobs/0/status"},
		{"required nullable result left out", get, response{200, jsonHeader, withMember(t, good, []string{"jobs", "result"}, "")}, "result"},
		{"null where the document has no null", get, response{200, jsonHeader, withMember(t, good, []string{"deadline"}, "null")}, "deadline"},
		{"a member the document does not have", get, response{200, jsonHeader, withMember(t, good, []string{"orderID"}, `"o-1"`)}, "orderID"},
		{"createdAt not a date-time", get, response{200, jsonHeader, withMember(t, good, []string{"createdAt"}, `"yesterday"`)}, "createdAt"},
		{"order error without a message", get, response{200, jsonHeader, withMember(t, good, []string{"error"}, `{"code":"x"}`)}, "message"},
		{"undocumented status", get, response{418, jsonHeader, []byte(errBody)}, "status is not supported"},
		{"wrong Content-Type", get, response{200, map[string]string{"Content-Type": "text/plain"}, good}, "text/plain"},
		{"error body with an extra member", get, response{404, jsonHeader, []byte(`{"error":{"code":"order_not_found","message":"m"},"status":404}`)}, "status"},
		{"error code not snake_case", get, response{404, jsonHeader, []byte(`{"error":{"code":"OrderNotFound","message":"m"}}`)}, "/error/code"},
		{"202 without Location", create, response{202, jsonHeader, good}, "Location"},
		{"503 without Retry-After", create, response{503, jsonHeader, []byte(`{"error":{"code":"unavailable","message":"m"}}`)}, "Retry-After"},
		{"405 with the wrong Allow", request{method: "DELETE", path: ordersPath}, response{405, map[string]string{"Content-Type": "application/json", "Allow": "GET"},
			[]byte(`{"error":{"code":"method_not_allowed","message":"m"}}`)}, "Allow"},
		{"a wrong method that is not refused", request{method: "PUT", path: "/healthz"}, response{200, jsonHeader, []byte(`{"status":"ok"}`)}, "not 405"},
		{"a forbidden request accepted", request{method: "POST", path: ordersPath, contentType: "application/json", body: `{"parameters":{},"deadlineMs":0}`},
			response{202, map[string]string{"Content-Type": "application/json", "Location": "/v1/parallelCallbacks/o-1"}, good}, "forbids this request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			problems := s.check(tt.req, tt.resp, nil)
			if len(problems) == 0 || !strings.Contains(fmt.Sprint(problems), tt.want) {
				t.Fatalf("problems %v, want one mentioning %q", problems, tt.want)
			}
		})
	}

	// A malformed request refused with 4xx is no problem; undocumented paths
	// are not checked.
	for _, ok := range []struct {
		req  request
		resp response
	}{
		{request{method: "POST", path: ordersPath, contentType: "application/json", body: `{"parameters":{},"deadlineMs":0}`},
			response{400, jsonHeader, []byte(`{"error":{"code":"invalid_field","message":"m","field":"deadlineMs"}}`)}},
		{request{method: "POST", path: "/v1/batchJobA", body: "anything"}, response{202, nil, []byte("mock accepted")}},
	} {
		if problems := s.check(ok.req, ok.resp, nil); len(problems) > 0 {
			t.Errorf("%s %s answered %d: problems %v, want none", ok.req.method, ok.req.path, ok.resp.status, problems)
		}
	}
}

// recordingTB is a testing.TB that keeps what Errorf reports instead of
// failing the test.
type recordingTB struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// strictFake is a fakeService that apiClient does not recognise as one, so
// its canned orders are judged strictly.
type strictFake struct{ *fakeService }

// TestOpenAPI_doReportsDepartures proves the hook is wired: apiClient.do
// reports an answer that departs from the document, and a conforming one
// not.
func TestOpenAPI_doReportsDepartures(t *testing.T) {
	t.Parallel()
	good := mustJSON(t, freshOrder())
	for name, tt := range map[string]struct {
		body []byte
		want string
	}{
		"order without status": {withMember(t, good, []string{"status"}, ""), `"status"`},
		"complete order":       {good, ""},
	} {
		api := startServer(t, strictFake{&fakeService{getBody: tt.body}}, httpapi.Config{})
		rec := &recordingTB{TB: t}
		(&apiClient{t: rec, c: api.c, lenient: api.lenient}).get(ordersPath + "/o-1")
		got := strings.Join(rec.errors, "\n")
		if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
			t.Errorf("%s: do reported %q, want a report mentioning %q", name, got, tt.want)
		}
	}
}

// TestOpenAPI_lenientOnlyForCannedPartialOrders checks which operations the
// hook judges by the relaxed document.
func TestOpenAPI_lenientOnlyForCannedPartialOrders(t *testing.T) {
	t.Parallel()
	good := mustJSON(t, freshOrder())
	tests := []struct {
		svc  httpapi.OrderService
		want []string
	}{
		{&fakeService{submitBody: good, getBody: good, adminBody: good}, nil},
		{&fakeService{submitBody: good, getBody: []byte(`{"orderId":"o-1"}`), adminErr: actors.ErrNotFound, listErr: actors.ErrUnavailable}, []string{"getOrder"}},
		{&fakeService{submitBody: good, getBody: good, adminBody: good, page: persistence.Page{Records: []persistence.Record{{Data: good}, {Data: []byte(`{}`)}}}}, []string{"listOrders"}},
		{&fakeService{submitBody: good, getBody: good}, []string{"cancelOrder", "retryOrder"}}, // no canned answer at all
		{&fuzzService{}, nil},
	}
	for i, tt := range tests {
		if got := slices.Sorted(maps.Keys(lenientOps(t, tt.svc))); !slices.Equal(got, tt.want) {
			t.Errorf("case %d: lenient %q, want %q", i, got, tt.want)
		}
	}
}

// TestOpenAPI_everyAnswerOfAWorkingServerConforms drives every route once,
// with complete orders, through apiClient.do (which checks each exchange).
func TestOpenAPI_everyAnswerOfAWorkingServerConforms(t *testing.T) {
	t.Parallel()
	full, fresh := mustJSON(t, fullOrder()), mustJSON(t, freshOrder())
	svc := &fakeService{submitBody: fresh, getBody: full, adminBody: full,
		outcome: order.Outcome{OrderID: "o-1", JobID: "j-1", JobStatus: order.JobCompleted, OrderStatus: order.Completed},
		page:    persistence.Page{Records: []persistence.Record{{Data: full}, {Data: fresh}}, Next: "c-2"}}
	api := startServer(t, svc, httpapi.Config{Metrics: textMetrics{}, AdminToken: "adm"})
	if len(api.lenient) > 0 {
		t.Fatalf("lenient %v, want none", api.lenient)
	}
	admin := map[string]string{"Authorization": "Bearer adm"}
	for _, r := range []request{
		{method: "POST", path: ordersPath, contentType: "application/json; charset=utf-8", body: `{"parameters":{"a":1},"jobs":["BatchJobA"],"deadlineMs":60000,"notifyUrl":"https://example.com/h"}`, header: map[string]string{"Idempotency-Key": "k-1"}},
		{method: "GET", path: ordersPath + "?status=failed&limit=2&cursor=c-1", header: admin},
		{method: "POST", path: resultsPath, contentType: "application/json", body: `{"orderId":"o-1","jobId":"j-1","timeout":30,"status":"failed","error":{"e":1},"result":null}`, header: map[string]string{"X-Callback-Token": "t"}},
		{method: "GET", path: ordersPath + "/o-1"},
		{method: "POST", path: ordersPath + "/o-1/cancel", contentType: "application/json", body: `{"reason":"r"}`, header: admin},
		{method: "POST", path: ordersPath + "/o-1/cancel", header: admin},
		{method: "POST", path: ordersPath + "/o-1/retry", header: admin},
		{method: "GET", path: ordersPath, header: map[string]string{"Authorization": "Bearer wrong"}},
		{method: "GET", path: "/healthz"},
		{method: "GET", path: "/readyz"},
		{method: "GET", path: "/metrics"},
		{method: "GET", path: "/openapi.json"},
		{method: "PATCH", path: ordersPath + "/o-1"},
	} {
		if resp := api.do(r); resp.status >= 500 {
			t.Errorf("%s %s: %d %s", r.method, r.path, resp.status, resp.body)
		}
	}
	// /metrics without metrics configured is a documented 404.
	startServer(t, svc, httpapi.Config{}).get("/metrics")
}

// textMetrics is a MetricsWriter with one counter.
type textMetrics struct{}

func (textMetrics) ContentType() string { return "text/plain; version=0.0.4; charset=utf-8" }
func (textMetrics) WriteTo(w io.Writer) (int64, error) {
	n, err := io.WriteString(w, "# TYPE fanflow_up gauge\nfanflow_up 1\n")
	return int64(n), err
}
