package order_test

import (
	"encoding/json"
	"testing"

	"github.com/fanflow/fanflow/order"
)

func TestStatus_textRoundTrip(t *testing.T) {
	for _, c := range []struct {
		s        order.Status
		name     string
		terminal bool
	}{
		{order.Running, "running", false},
		{order.Completed, "completed", true},
		{order.Failed, "failed", true},
		{order.Expired, "expired", true},
		{order.Cancelled, "cancelled", true},
	} {
		if got := c.s.String(); got != c.name {
			t.Errorf("Status(%d).String() = %q, want %q", uint8(c.s), got, c.name)
		}
		if c.s.Terminal() != c.terminal {
			t.Errorf("%v.Terminal() = %v", c.s, !c.terminal)
		}
		b, err := json.Marshal(c.s)
		if err != nil || string(b) != `"`+c.name+`"` {
			t.Errorf("json.Marshal(%v) = %s, %v", c.s, b, err)
		}
		var back order.Status
		if err := json.Unmarshal(b, &back); err != nil || back != c.s {
			t.Errorf("json.Unmarshal(%s) = %v, %v", b, back, err)
		}
		if p, err := order.ParseStatus(c.name); err != nil || p != c.s {
			t.Errorf("ParseStatus(%q) = %v, %v", c.name, p, err)
		}
	}
}

func TestStatus_invalidValues(t *testing.T) {
	for _, s := range []order.Status{0, order.Cancelled + 1, 255} {
		if _, err := s.MarshalText(); err == nil {
			t.Errorf("Status(%d).MarshalText succeeded", uint8(s))
		}
		if _, err := json.Marshal(s); err == nil {
			t.Errorf("json.Marshal(Status(%d)) succeeded", uint8(s))
		}
	}
	if got := order.Status(0).String(); got != "Status(0)" {
		t.Errorf("Status(0).String() = %q", got)
	}
	if got := order.Status(9).String(); got != "Status(9)" {
		t.Errorf("Status(9).String() = %q", got)
	}
	for _, name := range []string{"", "Running", "pending", "unknown"} {
		if s, err := order.ParseStatus(name); err == nil {
			t.Errorf("ParseStatus(%q) = %v, want an error", name, s)
		}
		s := order.Running
		if err := s.UnmarshalText([]byte(name)); err == nil || s != order.Running {
			t.Errorf("UnmarshalText(%q) = %v and set %v; want an error and no change", name, err, s)
		}
	}
	var s order.Status
	if err := json.Unmarshal([]byte(`3`), &s); err == nil {
		t.Errorf("json.Unmarshal(3) into Status = %v, want an error", s)
	}
}

func TestJobStatus_textRoundTrip(t *testing.T) {
	for _, c := range []struct {
		s    order.JobStatus
		name string
		done bool
	}{
		{order.JobPending, "pending", false},
		{order.JobProcessing, "processing", false},
		{order.JobCompleted, "completed", true},
		{order.JobFailed, "failed", true},
	} {
		if got := c.s.String(); got != c.name {
			t.Errorf("JobStatus(%d).String() = %q, want %q", uint8(c.s), got, c.name)
		}
		if c.s.Done() != c.done {
			t.Errorf("%v.Done() = %v", c.s, !c.done)
		}
		b, err := json.Marshal(c.s)
		if err != nil || string(b) != `"`+c.name+`"` {
			t.Errorf("json.Marshal(%v) = %s, %v", c.s, b, err)
		}
		var back order.JobStatus
		if err := json.Unmarshal(b, &back); err != nil || back != c.s {
			t.Errorf("json.Unmarshal(%s) = %v, %v", b, back, err)
		}
		if p, err := order.ParseJobStatus(c.name); err != nil || p != c.s {
			t.Errorf("ParseJobStatus(%q) = %v, %v", c.name, p, err)
		}
	}
}

func TestJobStatus_invalidValues(t *testing.T) {
	for _, s := range []order.JobStatus{0, order.JobFailed + 1, 255} {
		if _, err := s.MarshalText(); err == nil {
			t.Errorf("JobStatus(%d).MarshalText succeeded", uint8(s))
		}
		if s.Done() {
			t.Errorf("JobStatus(%d).Done() = true", uint8(s))
		}
	}
	if got := order.JobStatus(7).String(); got != "JobStatus(7)" {
		t.Errorf("JobStatus(7).String() = %q", got)
	}
	for _, name := range []string{"", "Pending", "running", "expired"} {
		if s, err := order.ParseJobStatus(name); err == nil {
			t.Errorf("ParseJobStatus(%q) = %v, want an error", name, s)
		}
		s := order.JobPending
		if err := s.UnmarshalText([]byte(name)); err == nil || s != order.JobPending {
			t.Errorf("UnmarshalText(%q) = %v and set %v; want an error and no change", name, err, s)
		}
	}
	var o order.Order
	if err := json.Unmarshal([]byte(`{"jobs":[{"jobId":"j","status":"done"}]}`), &o); err == nil {
		t.Error("an order with job status \"done\" decoded without error")
	}
}
