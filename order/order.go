package order

import (
	"encoding/json"
	"time"
)

// SchemaVersion is the version of the snapshot format written by this code.
// Restore refuses snapshots with a newer schema.
const SchemaVersion = 1

// JobSpec is a configured job type: where its service is called and the
// timeout (seconds) handed to it. Job types are configuration, not code.
type JobSpec struct {
	// Type is the job type's name, e.g. "BatchJobA".
	Type string `json:"type" yaml:"type"`
	// Endpoint is the path appended to the jobs base URL, e.g. "/v1/batchJobA".
	Endpoint string `json:"endpoint" yaml:"endpoint"`
	// Timeout is passed to the job service as "timeout" (seconds).
	Timeout int `json:"timeout" yaml:"timeout"`
	// CancelEndpoint, when set, is called (POST, same body as the callout)
	// to compensate a job that was accepted but will not be waited for,
	// because its order failed, expired or was cancelled. Optional.
	CancelEndpoint string `json:"cancelEndpoint,omitempty" yaml:"cancelEndpoint"`
}

// Job is one job of an order as it is stored and shown. It is a plain value:
// the Machine that owns it is its only writer.
type Job struct {
	JobID    string `json:"jobId"`
	Type     string `json:"type"`
	Endpoint string `json:"endpoint"`
	Timeout  int    `json:"timeout"`
	// CancelEndpoint is the job type's compensation endpoint, if it has one.
	CancelEndpoint string    `json:"cancelEndpoint,omitempty"`
	Status         JobStatus `json:"status"`
	// Attempts counts the callouts started for this job, over all drives.
	Attempts int `json:"attempts"`
	// FirstAttempt is the attempt that began the current drive (1, or the
	// first attempt after a retry of the order); omitted when 1.
	FirstAttempt int `json:"firstAttempt,omitempty"`
	// Result is what the job service sent with its callback (any JSON).
	Result json.RawMessage `json:"result"`
	// Error is why the job failed: the callback's "error" or a callout error.
	Error json.RawMessage `json:"error"`
	// CompletedAt is when the job reached completed or failed.
	CompletedAt *time.Time `json:"completedAt"`
	// RetryAt is when a scheduled callout retry is due; nil when none is.
	RetryAt *time.Time `json:"retryAt,omitempty"`
	// LateCallback records, for audit, a callback that arrived after the
	// order had already finished (expired, cancelled or failed).
	LateCallback *LateCallback `json:"lateCallback,omitempty"`
	// Compensation records the call of the cancel endpoint, when one was made.
	Compensation *Delivery `json:"compensation,omitempty"`
}

// DeliveryStatus is the state of a call fanflow makes on its own account:
// a compensation or a completion webhook.
type DeliveryStatus string

// Delivery statuses.
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliverySucceeded DeliveryStatus = "succeeded"
	DeliveryFailed    DeliveryStatus = "failed"
)

// Delivery is the outcome of a compensation or webhook call, with retries.
type Delivery struct {
	Status   DeliveryStatus `json:"status"`
	Attempts int            `json:"attempts,omitempty"`
	// At is when the call succeeded or was given up.
	At    *time.Time `json:"at,omitempty"`
	Error string     `json:"error,omitempty"`
}

// LateCallback is a callback that arrived after its order had finished.
type LateCallback struct {
	At     time.Time       `json:"at"`
	Status JobStatus       `json:"status"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  json.RawMessage `json:"error,omitempty"`
}

// Error is a problem recorded on an order, in the API's error shape.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Order is the whole state of one order: the snapshot that is persisted and
// the JSON the API shows. It is a plain value; Machine.Snapshot returns a copy.
type Order struct {
	Schema      int             `json:"schema"`
	OrderID     string          `json:"orderId"`
	Status      Status          `json:"status"`
	Parameters  json.RawMessage `json:"parameters"`
	Jobs        []Job           `json:"jobs"`
	CreatedAt   time.Time       `json:"createdAt"`
	UpdatedAt   time.Time       `json:"updatedAt"`
	Deadline    time.Time       `json:"deadline"`
	CompletedAt *time.Time      `json:"completedAt"`
	Error       *Error          `json:"error"`
	// NotifyURL receives the final order JSON when the order finishes.
	NotifyURL string `json:"notifyUrl,omitempty"`
	// Notification records the delivery to NotifyURL.
	Notification *Delivery `json:"notification,omitempty"`
	// IdempotencyKey is the create request's Idempotency-Key header, if any.
	IdempotencyKey string `json:"idempotencyKey,omitempty"`
	// Retries counts the re-drives of this order (POST …/retry).
	Retries int `json:"retries,omitempty"`
	// Version increases by one with every state change; the store never
	// replaces a newer version with an older one.
	Version uint64 `json:"version"`
}

// Job returns a pointer to the job with the given id, or nil.
func (o *Order) Job(jobID string) *Job {
	for i := range o.Jobs {
		if o.Jobs[i].JobID == jobID {
			return &o.Jobs[i]
		}
	}
	return nil
}

// Clone returns a deep copy of o: its slices and pointers are not shared.
// Raw JSON values are shared, as nothing in this package mutates them.
func (o *Order) Clone() Order {
	c := *o
	c.Jobs = append([]Job(nil), o.Jobs...)
	if o.CompletedAt != nil {
		t := *o.CompletedAt
		c.CompletedAt = &t
	}
	if o.Error != nil {
		e := *o.Error
		c.Error = &e
	}
	c.Notification = o.Notification.clone()
	for i := range c.Jobs {
		j := &c.Jobs[i]
		if j.CompletedAt != nil {
			t := *j.CompletedAt
			j.CompletedAt = &t
		}
		if j.RetryAt != nil {
			t := *j.RetryAt
			j.RetryAt = &t
		}
		if j.LateCallback != nil {
			l := *j.LateCallback
			j.LateCallback = &l
		}
		j.Compensation = j.Compensation.clone()
	}
	return c
}

func (d *Delivery) clone() *Delivery {
	if d == nil {
		return nil
	}
	c := *d
	if d.At != nil {
		t := *d.At
		c.At = &t
	}
	return &c
}
