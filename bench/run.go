package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/fanflow/fanflow/mocks"
)

// Run runs the workload cfg describes and returns its Report. It returns
// an error if the run could not be set up (and then no Report), or was
// aborted (ctx ended or Config.Timeout passed), or a process it started
// failed (and then the partial Report, marked Aborted); failed orders are
// not an error, they are counted in the Report. Everything Run starts is
// stopped before it returns.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bench: invalid config: %w", err)
	}
	if cfg.Target == "" && cfg.FanflowBin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("bench: find the fanflow binary (give FanflowBin): %w", err)
		}
		cfg.FanflowBin = exe
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	r := &runner{cfg: &cfg, log: cfg.Logger}
	rep, err := r.run(ctx)
	if r.mock != nil {
		st := r.mock.Stats()
		rep.Mocks = MockStats{
			CalloutsAccepted: st.CalloutsAccepted, CalloutsRejected: st.CalloutsRejected, CalloutsInvalid: st.CalloutsInvalid,
			CallbacksSent: st.CallbacksSent, CallbacksRetried: st.CallbacksRetried, CallbacksFailed: st.CallbacksFailed,
		}
	}
	if cerr := r.cleanup(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if err != nil {
		if !r.started {
			rep = nil
		}
		return rep, fmt.Errorf("bench: %w", err)
	}
	return rep, nil
}

// runner is the state of one Run; it is used by one goroutine.
type runner struct {
	cfg     *Config
	log     *slog.Logger
	rep     *Report // what cleanup completes
	started bool    // orders have been sent

	dir          string
	redis        *child
	orchestrator *child
	mockLn       net.Listener
	mock         *mocks.Server
	mockSrv      *fasthttp.Server
	mockServed   chan error
	gen          *generator
}

func (r *runner) run(ctx context.Context) (*Report, error) {
	cfg := r.cfg
	rep := &Report{
		StartedAt: time.Now().UTC().Truncate(time.Millisecond),
		Workload: Workload{
			Target: "child", Store: cfg.Store, Orders: cfg.Orders, Warmup: cfg.Warmup,
			Concurrency: cfg.Concurrency, Rate: cfg.Rate, CallbackDelayMs: ms(cfg.CallbackDelay),
		},
		Errors: map[string]uint64{},
		Host:   Host{NumCPU: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, GoVersion: runtime.Version()},
	}
	r.rep = rep
	if cfg.Target != "" {
		rep.Workload.Target, rep.Workload.Store = cfg.Target, ""
	}
	var err error
	if r.dir, err = os.MkdirTemp("", "fanflow-bench-"); err != nil {
		return rep, fmt.Errorf("temp dir: %w", err)
	}
	if r.mockLn, err = net.Listen("tcp", cfg.MockListen); err != nil {
		return rep, fmt.Errorf("mock job services: listen %s: %w", cfg.MockListen, err)
	}
	mockURL := "http://" + r.mockLn.Addr().String()

	probe := &fasthttp.Client{Name: "fanflow-bench", ReadTimeout: time.Second, WriteTimeout: time.Second}
	base := cfg.Target
	pid := cfg.PID
	if base == "" {
		if base, err = r.startOrchestrator(ctx, mockURL, probe); err != nil {
			return rep, err
		}
		pid = r.orchestrator.pid()
	} else if status, body, err := probe.GetTimeout(nil, base+"/readyz", cfg.RequestTimeout); err != nil {
		return rep, fmt.Errorf("target %s: GET /readyz: %w", base, err)
	} else if status != fasthttp.StatusOK {
		return rep, fmt.Errorf("target %s is not ready: GET /readyz answered %d: %s", base, status, body)
	}
	if cfg.Target != "" {
		r.log.Info("bench: driving the target; it must call out to the mocks", "target", base, "jobsBaseUrl", mockURL)
	}

	if r.gen, err = newGenerator(cfg, base); err != nil {
		return rep, err
	}
	if err := r.startMocks(base + resultsPath); err != nil {
		return rep, err
	}

	r.started = true
	if cfg.Warmup > 0 {
		warm := newPhase("warm-up", cfg.Warmup)
		r.runPhase(ctx, warm)
		rep.WarmupErrors = warm.errorCounts()
		if len(rep.WarmupErrors) == 0 {
			rep.WarmupErrors = nil
		}
		if err := r.checkAlive(ctx, rep); err != nil {
			return rep, err
		}
	}

	procs := []struct {
		pid int
		dst **Process
	}{{pid, &rep.Orchestrator}, {r.redisPID(), &rep.RedisServer}, {os.Getpid(), &rep.Bench}}
	before := make([]cpuTimes, len(procs))
	errs := make([]error, len(procs))
	for i, p := range procs {
		if p.pid > 0 {
			before[i], errs[i] = readCPU(p.pid)
		}
	}
	calloutsBefore := r.callouts()
	measure := newPhase("measure", cfg.Orders)
	r.runPhase(ctx, measure)
	for i, p := range procs {
		if p.pid <= 0 {
			continue
		}
		*p.dst = r.processFigures(p.pid, before[i], errs[i], measure)
	}

	rep.Completed = int(measure.completed.Load())
	rep.Failed = int(measure.failed.Load())
	rep.NotStarted = cfg.Orders - int(measure.started.Load())
	phaseTime := measure.end.Sub(measure.begin)
	rep.Seconds = round(phaseTime.Seconds(), 3)
	rep.OrdersPerSecond = round(rate(float64(rep.Completed), phaseTime), 1)
	var create, e2e, read []time.Duration
	for _, s := range measure.samples {
		create, e2e, read = append(create, s.create), append(e2e, s.endToEnd), append(read, s.read)
	}
	rep.CreateLatency, rep.EndToEndLatency, rep.ReadLatency = Summarize(create), Summarize(e2e), Summarize(read)
	rep.Errors = measure.errorCounts()
	if rep.Completed > 0 {
		n := measure.creates.Load() + measure.reads.Load() + measure.callbacks.Load() + int64(r.callouts()-calloutsBefore)
		rep.ExchangesPerOrder = round(float64(n)/float64(rep.Completed), 2)
	}
	if err := r.checkAlive(ctx, rep); err != nil {
		return rep, err
	}

	// Stop what ran the workload before measuring the ceiling, so that the
	// ceiling has the machine to itself.
	if err := r.stopChildren(rep); err != nil {
		return rep, err
	}
	if cfg.Ceiling {
		c, err := measureCeiling(ctx, cfg.Concurrency, cfg.CeilingDuration, maxCeilingRequests, cfg.RequestTimeout)
		if err != nil {
			return rep, err
		}
		if c.OrdersPerSecond > 0 {
			c.Efficiency = round(rep.OrdersPerSecond/c.OrdersPerSecond, 4)
		}
		rep.Ceiling = &c
	}
	return rep, nil
}

// startOrchestrator starts the store's server if one is needed, then
// `fanflow serve`, and returns the orchestrator's base URL.
func (r *runner) startOrchestrator(ctx context.Context, mockURL string, probe *fasthttp.Client) (string, error) {
	cfg := r.cfg
	redisURL, prefix := cfg.RedisURL, ""
	if cfg.Store == "redis" {
		if redisURL == "" {
			c, url, err := startRedis(ctx, cfg.RedisServer, r.dir)
			if err != nil {
				return "", err
			}
			r.redis, redisURL = c, url
			r.log.Info("bench: redis-server started", "pid", c.pid(), "url", url)
		} else {
			// A shared Redis: keep this run's keys apart.
			prefix = "fanflow-bench-" + randomHex(4)
		}
	}
	args := func(listen string) []string {
		return orchestratorArgs(listen, mockURL, cfg.Store, filepath.Join(r.dir, "data"), redisURL, prefix)
	}
	c, base, err := startOrchestrator(ctx, cfg.FanflowBin, args, filepath.Join(r.dir, "fanflow.log"), probe)
	if err != nil {
		return "", err
	}
	r.orchestrator = c
	r.log.Info("bench: orchestrator started", "pid", c.pid(), "url", base, "args", c.cmd.Args)
	return base, nil
}

// startMocks serves the mock job services on r.mockLn, calling back to
// callbackURL and telling the generator of every callback answer.
func (r *runner) startMocks(callbackURL string) error {
	ts := r.cfg.timeScale()
	m, err := mocks.New(mocks.Config{
		CallbackURL:        callbackURL,
		TimeScale:          &ts,
		CallbackRetryFor:   r.cfg.OrderTimeout,
		OnCallbackAnswered: r.gen.onCallbackAnswered,
	}, r.cfg.Logger)
	if err != nil {
		return fmt.Errorf("mock job services: %w", err)
	}
	r.mock = m
	r.mockSrv = &fasthttp.Server{
		Handler:       m.Handler(),
		Name:          "fanflow-bench-mock",
		NoDefaultDate: true,
		ReadTimeout:   r.cfg.RequestTimeout,
		WriteTimeout:  r.cfg.RequestTimeout,
		IdleTimeout:   time.Minute,
	}
	r.mockServed = make(chan error, 1)
	go func() { r.mockServed <- r.mockSrv.Serve(r.mockLn) }()
	return nil
}

// runPhase runs p with a progress line.
func (r *runner) runPhase(ctx context.Context, p *phase) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.progress(p, stop)
	}()
	r.gen.run(ctx, p)
	close(stop)
	<-done
}

// progress writes p's progress line every second until stop is closed,
// then a last one.
func (r *runner) progress(p *phase, stop <-chan struct{}) {
	w := r.cfg.Progress
	if w == nil {
		<-stop
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	begin := time.Now()
	last, lastAt := int64(0), begin
	line := func(final bool) {
		now := time.Now()
		done := p.completed.Load()
		inflight := p.started.Load() - done - p.failed.Load()
		perSec := rate(float64(done-last), now.Sub(lastAt))
		if final {
			perSec = rate(float64(done), now.Sub(begin))
		}
		last, lastAt = done, now
		end, lead := "\n", ""
		if r.cfg.ProgressInline {
			end, lead = "", "\r\033[K"
			if final {
				end = "\n"
			}
		}
		fmt.Fprintf(w, "%s%-7s %5d/%d completed, %d failed, %4d in flight, %7.1f orders/s, %d errors, %5.1fs%s",
			lead, p.name, done, p.total, p.failed.Load(), inflight, perSec, p.errorTotal(), now.Sub(begin).Seconds(), end)
	}
	for {
		select {
		case <-t.C:
			line(false)
		case <-stop:
			line(true)
			return
		}
	}
}

// callouts is the number of callouts the mocks have seen.
func (r *runner) callouts() uint64 {
	st := r.mock.Stats()
	return st.CalloutsAccepted + st.CalloutsRejected + st.CalloutsInvalid
}

// redisPID is the PID of the redis-server the bench started, or 0.
func (r *runner) redisPID() int {
	if r.redis == nil {
		return 0
	}
	return r.redis.pid()
}

// processFigures reads pid's CPU time now and its peak RSS, and returns
// its figures over phase p given its CPU time before (or the error that
// reading it gave).
func (r *runner) processFigures(pid int, before cpuTimes, beforeErr error, p *phase) *Process {
	f := &Process{PID: pid}
	after, err := readCPU(pid)
	if err = errors.Join(beforeErr, err); err != nil {
		f.Error = err.Error()
	} else {
		cpu := after.Total() - before.Total()
		f.CPUSeconds = round(cpu.Seconds(), 3)
		f.Cores = round(rate(cpu.Seconds(), p.end.Sub(p.begin)), 3)
		if n := p.completed.Load(); n > 0 {
			f.CPUSecondsPerOrder = round(cpu.Seconds()/float64(n), 7)
		}
	}
	if rss, err := readPeakRSS(pid); err != nil {
		if f.Error != "" {
			f.Error += "; "
		}
		f.Error += err.Error()
	} else {
		f.PeakRSSBytes = rss
	}
	return f
}

// checkAlive returns an error if the run was aborted or a child died.
func (r *runner) checkAlive(ctx context.Context, rep *Report) error {
	for _, c := range []*child{r.orchestrator, r.redis} {
		if c != nil && c.exited() {
			rep.Aborted = c.name + " exited"
			return c.exitError()
		}
	}
	if err := ctx.Err(); err != nil {
		rep.Aborted = err.Error()
		if errors.Is(err, context.DeadlineExceeded) {
			rep.Aborted = fmt.Sprintf("timeout: the run took more than %v", r.cfg.Timeout)
		}
		return fmt.Errorf("aborted: %s", rep.Aborted)
	}
	return nil
}

// stopChildren stops the orchestrator, summarises its log, then stops the
// Redis server.
func (r *runner) stopChildren(rep *Report) error {
	var errs []error
	if c := r.orchestrator; c != nil {
		r.orchestrator = nil
		if err := c.stop(stopGrace); err != nil {
			errs = append(errs, err)
		}
		if s, err := summarizeLogFile(c.logPath); err != nil {
			errs = append(errs, err)
		} else {
			rep.OrchestratorLog = &s
		}
	}
	if c := r.redis; c != nil {
		r.redis = nil
		if err := c.stop(stopGrace); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// cleanup stops whatever is still running and removes the temporary
// directory (unless KeepTemp).
func (r *runner) cleanup() error {
	var errs []error
	rep := r.rep
	if rep == nil {
		rep = &Report{}
	}
	if err := r.stopChildren(rep); err != nil {
		errs = append(errs, err)
	}
	if r.mock != nil {
		if err := r.mock.Close(); err != nil {
			errs = append(errs, fmt.Errorf("mock job services: %w", err))
		}
	}
	if r.mockSrv != nil {
		if err := r.mockSrv.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("mock job services: shutdown: %w", err))
		}
		if err := <-r.mockServed; err != nil {
			errs = append(errs, fmt.Errorf("mock job services: serve: %w", err))
		}
	} else if r.mockLn != nil {
		r.mockLn.Close()
	}
	if r.gen != nil {
		r.gen.client.CloseIdleConnections()
	}
	if r.dir != "" {
		if r.cfg.KeepTemp {
			r.log.Warn("bench: kept the temporary directory", "dir", r.dir)
		} else if err := os.RemoveAll(r.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", r.dir, err))
		}
	}
	return errors.Join(errs...)
}
