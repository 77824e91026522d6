package order

// DefaultJobs returns the seed's job types: BatchJobA, B and C with their
// endpoints and timeouts (seconds). A fresh slice on every call.
func DefaultJobs() []JobSpec {
	return []JobSpec{
		{Type: "BatchJobA", Endpoint: "/v1/batchJobA", Timeout: 30},
		{Type: "BatchJobB", Endpoint: "/v1/batchJobB", Timeout: 20},
		{Type: "BatchJobC", Endpoint: "/v1/batchJobC", Timeout: 10},
	}
}
