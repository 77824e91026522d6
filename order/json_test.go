package order_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/fanflow/fanflow/order"
)

// richOrder is a finished order with every optional field set, for the
// encoder tests to vary.
func richOrder(t testing.TB) order.Order {
	t.Helper()
	o := completedOrder(t)
	at := o.UpdatedAt.Add(time.Second)
	o.Jobs[0].CancelEndpoint = "/v1/batchJobA/cancel"
	o.Jobs[0].FirstAttempt = 2
	o.Jobs[0].RetryAt = &at
	o.Jobs[0].Compensation = &order.Delivery{Status: order.DeliveryFailed, Attempts: 3, At: &at, Error: "cancel endpoint said 500"}
	o.Jobs[1].LateCallback = &order.LateCallback{At: at, Status: order.JobCompleted, Result: json.RawMessage(`{"rows":12}`), Error: json.RawMessage(`"late"`)}
	o.Jobs[2].Status = order.JobFailed
	o.Jobs[2].Error = json.RawMessage(`{"code":"boom"}`)
	o.Status = order.Failed
	o.Error = &order.Error{Code: "job_failed", Message: "job BatchJobC failed"}
	o.NotifyURL = "http://127.0.0.1:9/hook?a=1&b=2"
	o.Notification = &order.Delivery{Status: order.DeliveryPending}
	o.IdempotencyKey = "key-1"
	o.Retries = 2
	return o
}

func TestAppendJSON_sameBytesAsEncodingJSON(t *testing.T) {
	tricky := []string{
		"", "plain", `say "hi"`, `back\slash`, "tab\there", "nl\n", "\x00\x1f",
		"<script>&amp;</script>", "ünïcödé", "日本語", "\u2028\u2029", "bad \xff utf-8", "\xed\xa0\x80",
	}
	cases := map[string]func(o *order.Order){
		"completed order":          func(o *order.Order) { *o = completedOrder(t) },
		"every optional field set": func(*order.Order) {},
		"nil jobs":                 func(o *order.Order) { o.Jobs = nil },
		"empty jobs":               func(o *order.Order) { o.Jobs = []order.Job{} },
		"no error, no times":       func(o *order.Order) { o.Error, o.CompletedAt = nil, nil },
		"raw with whitespace":      func(o *order.Order) { o.Parameters = json.RawMessage(" { \"a\" : [1, 2 ,3] }\n") },
		"raw with html":            func(o *order.Order) { o.Parameters = json.RawMessage(`{"h":"<b>&</b>"}`) },
		"raw with unicode":         func(o *order.Order) { o.Jobs[0].Result = json.RawMessage("{\"s\":\"ü\u2028\"}") },
		"raw null":                 func(o *order.Order) { o.Parameters = json.RawMessage(`null`) },
		"raw nil":                  func(o *order.Order) { o.Parameters = nil },
		"raw empty, not nil":       func(o *order.Order) { o.Parameters = json.RawMessage{} },
		"raw invalid":              func(o *order.Order) { o.Jobs[1].Result = json.RawMessage(`{"a":`) },
		"raw invalid but plain":    func(o *order.Order) { o.Jobs[1].Error = json.RawMessage(`{a}`) },
		"late callback empty raw":  func(o *order.Order) { o.Jobs[1].LateCallback.Result, o.Jobs[1].LateCallback.Error = nil, nil },
		"invalid status":           func(o *order.Order) { o.Status = order.Status(200) },
		"invalid job status":       func(o *order.Order) { o.Jobs[0].Status = order.JobStatus(200) },
		"year 10000":               func(o *order.Order) { o.Deadline = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"year -1": func(o *order.Order) {
			o.Jobs[0].RetryAt = &time.Time{}
			*o.Jobs[0].RetryAt = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)
		},
		"zone with offset": func(o *order.Order) {
			o.CreatedAt = o.CreatedAt.In(time.FixedZone("X", 5*3600+30*60))
		},
		"zero times": func(o *order.Order) { o.CreatedAt, o.UpdatedAt, o.Deadline = time.Time{}, time.Time{}, time.Time{} },
	}
	for i, s := range tricky {
		cases["string "+string(rune('a'+i))] = func(o *order.Order) {
			o.OrderID, o.Jobs[0].Type, o.Error.Message, o.Jobs[0].Compensation.Error, o.NotifyURL = s, s, s, s, s
		}
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			o := richOrder(t)
			mutate(&o)
			if msg := jsonMismatch(&o); msg != "" {
				t.Fatal(msg)
			}
		})
	}
}

func TestAppendJSON_appendsToWhatIsThere(t *testing.T) {
	o := richOrder(t)
	want, err := json.Marshal(&o)
	if err != nil {
		t.Fatal(err)
	}
	got, err := o.AppendJSON([]byte("prefix:"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "prefix:"+string(want) {
		t.Fatalf("got %s", got)
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("c-42", `{"customer":"c-42"}`, "job failed", int64(0))
	f.Add("<&>", " [1, \"\u2028\"] ", "\xff", int64(-62135596800))
	f.Add("", `{`, "", int64(253402300800))
	f.Fuzz(func(t *testing.T, s, raw, msg string, unix int64) {
		o := richOrder(t)
		o.OrderID, o.Jobs[1].Endpoint, o.Error.Message = s, s, msg
		o.Parameters, o.Jobs[0].Result = json.RawMessage(raw), json.RawMessage(raw)
		o.Jobs[1].LateCallback.Error = json.RawMessage(raw)
		o.UpdatedAt = time.Unix(unix, int64(len(s))).UTC()
		if msg := jsonMismatch(&o); msg != "" {
			t.Fatal(msg)
		}
	})
}
