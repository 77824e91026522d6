// Package bench is fanflow's load generator: it drives orders against an
// orchestrator over HTTP, as a black box, and reports throughput, latency
// percentiles, errors by kind and the orchestrator's CPU and memory cost.
//
// One Run hosts the mock job services (package mocks) on a loopback port,
// starts `fanflow serve --mocks=false` as a separate process pointed at
// them (or uses an orchestrator already running, Config.Target), starts a
// redis-server of its own for the Redis store, then runs a warm-up phase
// and a measured phase. Each order is one create (POST), the
// orchestrator's callouts to the mocks, the mocks' callbacks, and one
// status read (GET) once a callback's answer says the order completed:
// eight HTTP exchanges with the default three jobs.
//
// Latencies are exact: every sample is kept and sorted, and percentiles
// are nearest-rank. CPU seconds come from /proc/<pid>/stat (utime+stime)
// before and after the measured phase; peak RSS from VmHWM in
// /proc/<pid>/status. Everything listens on and connects to loopback
// addresses only, every loop is bounded by a count and by Config.Timeout,
// and Run stops, by PID, only the processes it started.
//
// `fanflow bench` (cmd/fanflow) is the command line; bench/README.md says
// how to run it and what each figure means.
package bench
