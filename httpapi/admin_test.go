package httpapi_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/fanflow/fanflow/actors"
	"github.com/fanflow/fanflow/httpapi"
	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
)

func TestCancel_answersTheOrderWithTheReason(t *testing.T) {
	t.Parallel()
	svc := &fakeService{adminBody: []byte(`{"orderId":"o-1","status":"cancelled"}`)}
	api := startServer(t, svc, httpapi.Config{})
	r := api.postJSON(ordersPath+"/o-1/cancel", `{"reason":"customer changed their mind"}`)
	if r.status != 200 || string(r.body) != string(svc.adminBody) {
		t.Fatalf("status %d body %s", r.status, r.body)
	}
	if got := svc.adminCalls(); !slices.Equal(got, []string{"cancel o-1 customer changed their mind"}) {
		t.Fatalf("calls %q", got)
	}
}

func TestCancel_withoutBodyNeedsNoContentType(t *testing.T) {
	t.Parallel()
	svc := &fakeService{adminBody: []byte(`{}`)}
	api := startServer(t, svc, httpapi.Config{})
	if r := api.do(request{method: "POST", path: ordersPath + "/o-1/cancel"}); r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if got := svc.adminCalls(); !slices.Equal(got, []string{"cancel o-1 "}) {
		t.Fatalf("calls %q", got)
	}
}

func TestCancel_badBodyIs400AndChangesNothing(t *testing.T) {
	t.Parallel()
	for body, field := range map[string]string{`{"reason":7}`: "reason", `{"why":"x"}`: "why", `[1]`: ""} {
		svc := &fakeService{}
		api := startServer(t, svc, httpapi.Config{})
		r := api.postJSON(ordersPath+"/o-1/cancel", body)
		e := decodeError(t, r, 400)
		if e.Field != field {
			t.Errorf("body %s: field %q, want %q", body, e.Field, field)
		}
		svc.assertNoCalls(t)
	}
}

func TestAdmin_statusMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path   string
		err    error
		status int
		code   string
	}{
		{"/o-1/cancel", fmt.Errorf("order o-1: %w", order.ErrOrderFinished), 409, "order_finished"},
		{"/o-1/retry", fmt.Errorf("order o-1: %w", order.ErrNotRetryable), 409, "not_retryable"},
		{"/o-1/retry", fmt.Errorf("order o-1: %w", actors.ErrNotFound), 404, "order_not_found"},
	}
	for _, tt := range tests {
		svc := &fakeService{adminErr: tt.err}
		api := startServer(t, svc, httpapi.Config{})
		r := api.do(request{method: "POST", path: ordersPath + tt.path})
		if e := decodeError(t, r, tt.status); e.Code != tt.code {
			t.Errorf("%s with %v: code %q, want %q", tt.path, tt.err, e.Code, tt.code)
		}
	}
}

func TestRetry_is202WithTheOrder(t *testing.T) {
	t.Parallel()
	svc := &fakeService{adminBody: []byte(`{"orderId":"o-9","status":"running"}`)}
	api := startServer(t, svc, httpapi.Config{})
	r := api.do(request{method: "POST", path: ordersPath + "/o-9/retry"})
	if r.status != 202 || string(r.body) != string(svc.adminBody) {
		t.Fatalf("status %d body %s", r.status, r.body)
	}
	if got := svc.adminCalls(); !slices.Equal(got, []string{"retry o-9"}) {
		t.Fatalf("calls %q", got)
	}
}

func TestAdmin_tokenIsRequiredWhenConfigured(t *testing.T) {
	t.Parallel()
	for name, hdr := range map[string]map[string]string{
		"missing":     nil,
		"wrong":       {"Authorization": "Bearer nope"},
		"not bearer":  {"Authorization": "Basic s3cret-admin"},
		"token alone": {"Authorization": "s3cret-admin"},
	} {
		for _, path := range []string{ordersPath + "/o-1/cancel", ordersPath + "/o-1/retry"} {
			svc := &fakeService{}
			api := startServer(t, svc, httpapi.Config{AdminToken: "s3cret-admin"})
			checkError(t, api.do(request{method: "POST", path: path, header: hdr}), 401, "unauthorized", "Authorization", "bearer")
			checkError(t, api.do(request{method: "GET", path: ordersPath, header: hdr}), 401, "unauthorized", "Authorization", "bearer")
			if svc.assertNoCalls(t); t.Failed() {
				t.Fatalf("%s: %s", name, path)
			}
		}
	}
	svc := &fakeService{adminBody: []byte(`{}`)}
	api := startServer(t, svc, httpapi.Config{AdminToken: "s3cret-admin"})
	if r := api.do(request{method: "POST", path: ordersPath + "/o-1/cancel", header: map[string]string{"Authorization": "Bearer s3cret-admin"}}); r.status != 200 {
		t.Fatalf("right token: status %d %s", r.status, r.body)
	}
}

func TestList_passesTheQueryAndWrapsTheOrders(t *testing.T) {
	t.Parallel()
	svc := &fakeService{page: persistence.Page{
		Records: []persistence.Record{{Data: []byte(`{"orderId":"b"}`)}, {Data: []byte(`{"orderId":"a"}`)}},
		Next:    "cur-2",
	}}
	api := startServer(t, svc, httpapi.Config{})
	r := api.get(ordersPath + "?status=running&limit=2&cursor=cur-1")
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var body struct {
		Orders     []map[string]string `json:"orders"`
		NextCursor *string             `json:"nextCursor"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	if len(body.Orders) != 2 || body.Orders[0]["orderId"] != "b" || body.NextCursor == nil || *body.NextCursor != "cur-2" {
		t.Fatalf("body %s", r.body)
	}
	want := persistence.Query{Status: order.Running, Limit: 2, Cursor: "cur-1"}
	if got := svc.listCalls(); len(got) != 1 || got[0] != want {
		t.Fatalf("queries %+v, want %+v", got, want)
	}
}

func TestList_lastPageHasNullCursor(t *testing.T) {
	t.Parallel()
	api := startServer(t, &fakeService{}, httpapi.Config{})
	r := api.get(ordersPath)
	if r.status != 200 || string(r.body) != `{"orders":[],"nextCursor":null}` {
		t.Fatalf("status %d body %s", r.status, r.body)
	}
}

func TestList_badQueryIs400AndChangesNothing(t *testing.T) {
	t.Parallel()
	for query, field := range map[string]string{"?status=done": "status", "?limit=0": "limit", "?limit=1001": "limit", "?limit=x": "limit"} {
		svc := &fakeService{}
		api := startServer(t, svc, httpapi.Config{})
		checkError(t, api.get(ordersPath+query), 400, "invalid_field", field, field)
		svc.assertNoCalls(t)
	}
	svc := &fakeService{listErr: persistence.ErrBadCursor}
	api := startServer(t, svc, httpapi.Config{})
	checkError(t, api.get(ordersPath+"?cursor=zzz"), 400, "invalid_field", "cursor", "cursor")
}

func TestCreate_notifyURLMustBeAbsoluteHTTP(t *testing.T) {
	t.Parallel()
	for _, u := range []string{`"ftp://x/y"`, `"/relative"`, `7`, `"http://"`} {
		svc := &fakeService{}
		api := startServer(t, svc, httpapi.Config{})
		checkError(t, api.postJSON(ordersPath, `{"parameters":{},"notifyUrl":`+u+`}`), 400, "invalid_field", "notifyUrl", "notifyUrl")
		svc.assertNoCalls(t)
	}
	svc := &fakeService{submitBody: []byte(`{"orderId":"o-1"}`)}
	api := startServer(t, svc, httpapi.Config{})
	if r := api.postJSON(ordersPath, `{"parameters":{},"notifyUrl":"http://127.0.0.1:9/hook"}`); r.status != 202 {
		t.Fatalf("status %d %s", r.status, r.body)
	}
	if got := svc.submitCalls(); len(got) != 1 || got[0].NotifyURL != "http://127.0.0.1:9/hook" {
		t.Fatalf("calls %+v", got)
	}
}
