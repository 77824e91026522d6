package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fanflow/fanflow/actors"
	"github.com/fanflow/fanflow/order"
	"github.com/fanflow/fanflow/persistence"
	"github.com/fanflow/fanflow/persistence/redisstore"
	"github.com/fanflow/fanflow/persistence/redisstore/redistest"
)

// Flags of BenchmarkRecovery, after -args:
//
//	go test -run '^$' -bench Recovery -benchtime 1x ./cmd/fanflow/ -args -recovery.orders 10000
var (
	recoveryOrders = flag.Int("recovery.orders", 100_000,
		"BenchmarkRecovery: running orders seeded in Redis before the restart")
	recoveryBin = flag.String("recovery.bin", "",
		"BenchmarkRecovery: the fanflow binary to restart (default: this tree's, built by TestMain)")
	recoveryProfile = flag.String("recovery.cpuprofile", "",
		"BenchmarkRecovery: write a CPU profile of the orchestrator, taken from its start, to this file")
	recoveryHeapProfile = flag.String("recovery.heapprofile", "",
		"BenchmarkRecovery: write a heap profile of the orchestrator, taken once every order is loaded, to this file")
	recoveryWait = flag.Duration("recovery.timeout", 3*time.Minute,
		"BenchmarkRecovery: how long to wait for readiness, then for every order to be active")
	recoveryProfileSeconds = flag.Int("recovery.cpuprofile-seconds", 5,
		"BenchmarkRecovery: length of that profile in seconds")
)

// recoveryTimeout bounds seeding and each profile's wait in BenchmarkRecovery.
const recoveryTimeout = 3 * time.Minute

// BenchmarkRecovery measures a restart of fanflow with many running orders in
// Redis: it starts its own redis-server, seeds -recovery.orders running
// orders whose jobs all wait for their callbacks (built with the real order
// machine, written with the store's batch Save), then, per iteration, starts
// `fanflow serve --store redis` as a separate process and reports
//
//   - ready-s: seconds from starting the process to /readyz answering 200;
//   - loaded-s: seconds from starting the process until every seeded order
//     is activated in memory (fanflow_orders_active on /metrics reaches N:
//     the gauge rises when an activated order re-arms its deadline);
//   - cpu-s: the orchestrator's CPU time (user+system) by then, which
//     says more than the wall times on a busy machine;
//   - rss-MiB: the orchestrator's peak resident set size by then (VmHWM);
//   - seed-s: how long seeding took (once, outside the timer).
//
// Run it with -benchtime 1x: one restart takes seconds.
func BenchmarkRecovery(b *testing.B) {
	n := *recoveryOrders
	if n < 1 || n > 10_000_000 {
		b.Fatalf("-recovery.orders %d: want 1 to 10,000,000", n)
	}
	srv := redistest.Start(b)
	store, err := redisstore.New(redisstore.Options{URL: srv.URL(), Prefix: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	began := time.Now()
	if err := seedRunning(store, n, time.Now().Add(time.Hour)); err != nil {
		b.Fatal(err)
	}
	seeded := time.Since(began)
	store.Close()

	var ready, loaded, cpu, rss float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := restartOnce(b, srv.URL(), n, i == 0)
		ready, loaded, cpu, rss = ready+r.ready.Seconds(), loaded+r.loaded.Seconds(), cpu+r.cpu.Seconds(), rss+float64(r.rss)/(1<<20)
	}
	b.StopTimer()
	b.ReportMetric(ready/float64(b.N), "ready-s")
	b.ReportMetric(loaded/float64(b.N), "loaded-s")
	b.ReportMetric(cpu/float64(b.N), "cpu-s")
	b.ReportMetric(rss/float64(b.N), "rss-MiB")
	b.ReportMetric(seeded.Seconds(), "seed-s")
	b.ReportMetric(float64(n), "orders")
}

// seedRunning writes n running orders, all of whose jobs were accepted and
// wait for their callbacks, with deadline, in pipelined batches of 1,000 on
// four connections.
func seedRunning(store persistence.Store, n int, deadline time.Time) error {
	const batch, writers = 1000, 4
	ctx, cancel := context.WithTimeout(context.Background(), recoveryTimeout)
	defer cancel()
	starts := make(chan int)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for from := range starts {
				recs := make([]persistence.Record, 0, batch)
				for range min(batch, n-from) {
					r, err := runningRecord(deadline, 3)
					if err != nil {
						errs <- err
						return
					}
					recs = append(recs, r)
				}
				if err := store.Save(ctx, recs); err != nil {
					errs <- fmt.Errorf("seed orders %d–%d: %w", from, from+len(recs), err)
					return
				}
			}
		}()
	}
	var err error
loop:
	for from := 0; from < n; from += batch {
		select {
		case starts <- from:
		case err = <-errs:
			break loop
		}
	}
	close(starts)
	wg.Wait()
	if err != nil {
		return err
	}
	select {
	case err = <-errs:
	default:
	}
	return err
}

// runningRecord builds, with the order machine, a running order created a
// minute ago whose first accepted default jobs (of three) were accepted,
// the others called out but never acknowledged, and returns its Record.
func runningRecord(deadline time.Time, accepted int) (persistence.Record, error) {
	now := time.Now()
	m := order.New(order.Policy{})
	jobs := make([]order.NewJob, 0, 3)
	for _, spec := range order.DefaultJobs() {
		jobs = append(jobs, order.NewJob{JobID: actors.NewID(), Spec: spec})
	}
	id := actors.NewID()
	params := json.RawMessage(`{"customerId":"cust-0004711","region":"eu-west-1","priority":"normal","items":[{"sku":"A-100","qty":3},{"sku":"B-200","qty":1}]}`)
	if _, err := m.Step(order.Created{At: now.Add(-time.Minute), OrderID: id, Parameters: params, Jobs: jobs, Deadline: deadline}); err != nil {
		return persistence.Record{}, fmt.Errorf("order %s: create: %w", id, err)
	}
	for _, j := range jobs[:accepted] {
		if _, err := m.Step(order.CalloutAccepted{At: now, JobID: j.JobID, Attempt: 1}); err != nil {
			return persistence.Record{}, fmt.Errorf("order %s: accept %s: %w", id, j.JobID, err)
		}
	}
	data, err := json.Marshal(m.View())
	if err != nil {
		return persistence.Record{}, fmt.Errorf("order %s: encode: %w", id, err)
	}
	return persistence.RecordOf(m.View(), data, 24*time.Hour), nil
}

// restart is what one restart measured.
type restart struct {
	ready, loaded time.Duration // from the start of the process
	cpu           time.Duration // its CPU time until loaded
	rss           uint64        // its peak RSS until loaded, bytes
}

// restartOnce starts fanflow on the seeded store and measures its recovery
// of n orders. It stops the process (by its PID) before returning.
func restartOnce(b *testing.B, redisURL string, n int, profile bool) (m restart) {
	listen, pprofAddr := freeAddrTB(b), freeAddrTB(b)
	// Nothing listens on the jobs base URL: no callout is due anyway, and
	// one that were would fail visibly in the log.
	args := []string{"serve", "--store", "redis", "--redis-url", redisURL, "--redis-prefix", "bench",
		"--mocks=false", "--jobs-base-url", "http://" + freeAddrTB(b), "--listen", listen,
		"--callback-secret", "recovery-bench-secret-0123456789", "--log-level", "warn", "--log-format", "json"}
	if profile && (*recoveryProfile != "" || *recoveryHeapProfile != "") {
		args = append(args, "--pprof-listen", pprofAddr)
	}
	bin := binary
	if *recoveryBin != "" {
		bin = *recoveryBin
	}
	cmd := exec.Command(bin, args...)
	var log syncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	began := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() {
		// SIGTERM, then SIGKILL: the process is ours, found by its PID.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if b.Failed() {
			b.Logf("orchestrator output:\n%s", tail(log.String(), 40))
		}
	}()
	var profiled chan error
	if profile && *recoveryProfile != "" {
		profiled = make(chan error, 1)
		go func() { profiled <- cpuProfile(pprofAddr, *recoveryProfile, *recoveryProfileSeconds, exited) }()
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	deadline := began.Add(*recoveryWait)
	var last float64
	// poll returns when done or at the deadline (false).
	poll := func(what string, done func() bool) (time.Duration, bool) {
		for !done() {
			select {
			case <-exited:
				b.Fatalf("fanflow exited while waiting for %s:\n%s", what, tail(log.String(), 40))
			case <-time.After(2 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return time.Since(began), false
			}
		}
		return time.Since(began), true
	}
	var ok bool
	m.ready, ok = poll("/readyz 200", func() bool {
		resp, err := hc.Get("http://" + listen + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if !ok {
		b.Fatalf("/readyz not 200 within %s", *recoveryWait)
	}
	m.loaded, ok = poll(fmt.Sprintf("%d active orders", n), func() bool {
		v, err := gauge(hc, "http://"+listen+"/metrics", "fanflow_orders_active")
		last = v
		return err == nil && v >= float64(n)
	})
	if !ok || last != float64(n) {
		// Reported, with what was measured: the old recovery lost orders.
		b.Errorf("fanflow_orders_active = %v after %s, want %d", last, m.loaded.Round(time.Millisecond), n)
	}
	var err error
	if m.cpu, err = cpuTime(cmd.Process.Pid); err != nil {
		b.Error(err)
	}
	if m.rss, err = peakRSS(cmd.Process.Pid); err != nil {
		b.Error(err)
	}
	if profile && *recoveryHeapProfile != "" {
		if err := fetchTo(hc, "http://"+pprofAddr+"/debug/pprof/heap", *recoveryHeapProfile); err != nil {
			b.Errorf("heap profile: %v", err)
		}
	}
	if profiled != nil {
		if err := <-profiled; err != nil {
			b.Errorf("cpu profile: %v", err)
		}
	}
	b.Logf("%d orders: ready after %s, %v active after %s, CPU %s, peak RSS %d MiB",
		n, m.ready.Round(time.Millisecond), last, m.loaded.Round(time.Millisecond), m.cpu, m.rss>>20)
	if strings.Contains(log.String(), `"level":"ERROR"`) {
		b.Errorf("the orchestrator logged errors:\n%s", tail(log.String(), 20))
	}
	return m
}

// cpuProfile takes a CPU profile of seconds from the pprof server on addr,
// as soon as it answers, and writes it to path.
func cpuProfile(addr, path string, seconds int, exited <-chan struct{}) error {
	hc := &http.Client{Timeout: time.Duration(seconds)*time.Second + 30*time.Second}
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds)
	deadline := time.Now().Add(recoveryTimeout)
	for {
		err := fetchTo(hc, url, path)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("fanflow exited before its profile was taken")
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			return err
		}
	}
}

// fetchTo writes the body of a GET of url to the file path.
func fetchTo(hc *http.Client, url, path string) error {
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", url, err)
	}
	return f.Close()
}

// gauge reads one unlabelled sample from a Prometheus text page.
func gauge(hc *http.Client, url, name string) (float64, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no sample %s", url, name)
}

// cpuTime reads the user and system CPU time of process pid so far.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time: %w", err)
	}
	// Fields after the command name (in parentheses, which may hold spaces):
	// utime and stime are fields 14 and 15 of the whole line.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("cpu time: /proc/%d/stat has no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu time: /proc/%d/stat has %d fields after the name", pid, len(f))
	}
	var ticks uint64
	for _, s := range f[11:13] {
		v, err := strconv.ParseUint(s, 10, 63)
		if err != nil {
			return 0, fmt.Errorf("cpu time: %w", err)
		}
		ticks += v
	}
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// peakRSS reads VmHWM, in bytes, of process pid.
func peakRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("peak RSS: %w", err)
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			f := bytes.Fields(v)
			if len(f) != 2 || string(f[1]) != "kB" {
				return 0, fmt.Errorf("peak RSS: VmHWM line %q", line)
			}
			kb, err := strconv.ParseUint(string(f[0]), 10, 54)
			if err != nil {
				return 0, fmt.Errorf("peak RSS: %w", err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("peak RSS: no VmHWM in /proc status")
}

// freeAddrTB returns a loopback address with a port that was free a moment ago.
func freeAddrTB(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
