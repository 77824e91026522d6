package order

import "fmt"

// Status is the lifecycle state of an order. The zero value is invalid.
type Status uint8

// Order statuses, as DESIGN §3 names them. Running is the only non-terminal one.
const (
	Running Status = iota + 1
	Completed
	Failed
	Expired
	Cancelled
)

var statusNames = [...]string{Running: "running", Completed: "completed", Failed: "failed", Expired: "expired", Cancelled: "cancelled"}

// String returns the status as it appears in JSON ("running", "completed", …).
func (s Status) String() string {
	if int(s) < len(statusNames) && statusNames[s] != "" {
		return statusNames[s]
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// Terminal reports whether no further state change can happen to the order by
// itself: every status but Running.
func (s Status) Terminal() bool { return s != Running }

// ParseStatus turns a JSON status name into a Status.
func ParseStatus(name string) (Status, error) {
	for i, n := range statusNames {
		if n != "" && n == name {
			return Status(i), nil
		}
	}
	return 0, fmt.Errorf("order: unknown status %q", name)
}

// MarshalText implements encoding.TextMarshaler.
func (s Status) MarshalText() ([]byte, error) { return s.appendText(nil) }

// appendText appends the status's name to b, or fails for an invalid status.
func (s Status) appendText(b []byte) ([]byte, error) {
	if s == 0 || int(s) >= len(statusNames) {
		return nil, fmt.Errorf("order: invalid status %d", uint8(s))
	}
	return append(b, statusNames[s]...), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Status) UnmarshalText(b []byte) error {
	v, err := ParseStatus(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// JobStatus is the state of one job of an order. The zero value is invalid.
type JobStatus uint8

// Job statuses, as DESIGN §3 names them.
const (
	// JobPending: the callout has not been accepted yet.
	JobPending JobStatus = iota + 1
	// JobProcessing: the job service answered 2xx; waiting for its callback.
	JobProcessing
	// JobCompleted: the job service called back with success.
	JobCompleted
	// JobFailed: the callout was rejected or the job called back with failure.
	JobFailed
)

var jobStatusNames = [...]string{JobPending: "pending", JobProcessing: "processing", JobCompleted: "completed", JobFailed: "failed"}

// String returns the job status as it appears in JSON.
func (s JobStatus) String() string {
	if int(s) < len(jobStatusNames) && jobStatusNames[s] != "" {
		return jobStatusNames[s]
	}
	return fmt.Sprintf("JobStatus(%d)", uint8(s))
}

// Done reports whether the job has reached a final status.
func (s JobStatus) Done() bool { return s == JobCompleted || s == JobFailed }

// ParseJobStatus turns a JSON job status name into a JobStatus.
func ParseJobStatus(name string) (JobStatus, error) {
	for i, n := range jobStatusNames {
		if n != "" && n == name {
			return JobStatus(i), nil
		}
	}
	return 0, fmt.Errorf("order: unknown job status %q", name)
}

// MarshalText implements encoding.TextMarshaler.
func (s JobStatus) MarshalText() ([]byte, error) { return s.appendText(nil) }

// appendText appends the job status's name to b, or fails for an invalid one.
func (s JobStatus) appendText(b []byte) ([]byte, error) {
	if s == 0 || int(s) >= len(jobStatusNames) {
		return nil, fmt.Errorf("order: invalid job status %d", uint8(s))
	}
	return append(b, jobStatusNames[s]...), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *JobStatus) UnmarshalText(b []byte) error {
	v, err := ParseJobStatus(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}
