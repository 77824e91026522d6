package storetest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
)

// base is the creation time of the suite's orders. Every time in the suite
// has millisecond precision, the precision of the backends' indexes.
var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newOrder returns a realistic order snapshot: three jobs, parameters and
// results, about 1 KiB of JSON. Its deadline is one minute after created.
func newOrder(id string, version uint64, status order.Status, created time.Time) order.Order {
	updated := created.Add(time.Duration(version) * 100 * time.Millisecond)
	o := order.Order{
		Schema:     order.SchemaVersion,
		OrderID:    id,
		Status:     status,
		Parameters: json.RawMessage(`{"customerId":"cust-0004711","region":"eu-west-1","priority":"normal","items":[{"sku":"A-100","qty":3},{"sku":"B-200","qty":1}],"notes":"deliver to the loading dock"}`),
		CreatedAt:  created,
		UpdatedAt:  updated,
		Deadline:   created.Add(time.Minute),
		Version:    version,
	}
	for i, spec := range order.DefaultJobs() {
		j := order.Job{
			JobID:    fmt.Sprintf("%s-j%d", id, i+1),
			Type:     spec.Type,
			Endpoint: spec.Endpoint,
			Timeout:  spec.Timeout,
			Status:   order.JobProcessing,
			Attempts: 1,
		}
		if i == 0 || status.Terminal() {
			at := updated
			j.Status = order.JobCompleted
			j.Result = json.RawMessage(fmt.Sprintf(`{"rows":%d,"output":"s3://fanflow-results/%s/%s.parquet","checksum":"9f86d081884c7d659a2feaa0c55ad015"}`, 1000+i, id, spec.Type))
			j.CompletedAt = &at
		}
		o.Jobs = append(o.Jobs, j)
	}
	if status.Terminal() {
		at := updated
		o.CompletedAt = &at
	}
	if status == order.Failed {
		o.Error = &order.Error{Code: "JOB_FAILED", Message: "job BatchJobB failed: upstream returned 503"}
	}
	return o
}

// newRecord returns the Record of newOrder's snapshot, kept forever when
// finished (no ExpireAt).
func newRecord(tb testing.TB, id string, version uint64, status order.Status, created time.Time) persistence.Record {
	tb.Helper()
	o := newOrder(id, version, status, created)
	data, err := json.Marshal(&o)
	if err != nil {
		tb.Fatalf("marshal order %s: %v", id, err)
	}
	return persistence.RecordOf(&o, data, 0)
}
