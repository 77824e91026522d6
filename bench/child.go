package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// stopGrace is how long a child gets to stop on SIGTERM before SIGKILL.
const stopGrace = 15 * time.Second

// readyPoll is the interval between readiness probes of a starting child.
const readyPoll = 20 * time.Millisecond

// child is a process the bench started. Only its own PID is ever signalled.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	done    chan struct{} // closed when the process has exited
	waitErr error         // set before done is closed
}

// startChild starts bin with args and env added to the bench's
// environment, its output going to logPath.
func startChild(name, bin string, args, env []string, logPath string) (*child, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: log file: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, logFile: f, done: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		f.Close()
		close(c.done)
	}()
	return c, nil
}

// pid is the child's process id.
func (c *child) pid() int { return c.cmd.Process.Pid }

// exited reports whether the child has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// exitError describes how the child ended, with the tail of its log.
func (c *child) exitError() error {
	return fmt.Errorf("%s (pid %d) exited: %v; last lines of %s:\n%s",
		c.name, c.pid(), c.waitErr, c.logPath, tailFile(c.logPath, 20))
}

// stop ends the child: SIGTERM, then SIGKILL after grace. It returns an
// error if the child had to be killed or did not exit cleanly.
func (c *child) stop(grace time.Duration) error {
	if c.exited() {
		return nil
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop %s (pid %d): %w", c.name, c.pid(), err)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
		var ee *exec.ExitError
		if c.waitErr != nil && !(errors.As(c.waitErr, &ee) && ee.ExitCode() == 0) {
			return fmt.Errorf("stop %s (pid %d): %w", c.name, c.pid(), c.waitErr)
		}
		return nil
	case <-t.C:
	}
	_ = c.cmd.Process.Kill()
	<-c.done
	return fmt.Errorf("stop %s (pid %d): still running %v after SIGTERM; killed", c.name, c.pid(), grace)
}

// waitReady polls probe every readyPoll until it succeeds, the child exits
// or ctx ends.
func (c *child) waitReady(ctx context.Context, probe func() error) error {
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	for {
		err := probe()
		if err == nil {
			return nil
		}
		select {
		case <-c.done:
			return c.exitError()
		case <-ctx.Done():
			return fmt.Errorf("%s (pid %d) not ready: %w (last probe: %v)", c.name, c.pid(), ctx.Err(), err)
		case <-t.C:
		}
	}
}

// freeLoopbackAddr returns a loopback address whose port was free a moment
// ago.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// randomHex returns n random bytes, hex encoded.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// startRedis starts redis-server on a free loopback port in dir, with
// persistence off, and waits until it answers PING.
func startRedis(ctx context.Context, bin, dir string) (*child, string, error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, "", err
	}
	_, port, _ := net.SplitHostPort(addr)
	c, err := startChild("redis-server", bin, []string{
		"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--daemonize", "no", "--loglevel", "warning",
	}, nil, filepath.Join(dir, "redis.log"))
	if err != nil {
		return nil, "", fmt.Errorf("%w (install redis-server, pass --redis-url, or use --store embedded)", err)
	}
	if err := c.waitReady(ctx, func() error { return pingRedis(addr) }); err != nil {
		_ = c.stop(stopGrace)
		return nil, "", err
	}
	return c, "redis://" + addr + "/0", nil
}

// pingRedis sends PING to the Redis server at addr and expects +PONG.
func pingRedis(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(conn, "PING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// orchestratorArgs are the arguments of `fanflow serve` for a bench run.
func orchestratorArgs(listen, mockURL, store, dataDir, redisURL, redisPrefix string) []string {
	args := []string{"serve", "--mocks=false", "--jobs-base-url", mockURL, "--store", store,
		"--listen", listen, "--log-level", "warn", "--log-format", "json"}
	switch store {
	case "embedded":
		args = append(args, "--data-dir", dataDir)
	case "redis":
		args = append(args, "--redis-url", redisURL)
		if redisPrefix != "" {
			args = append(args, "--redis-prefix", redisPrefix)
		}
	}
	return args
}

// startOrchestrator starts bin with args(a free loopback address) and waits
// until its /readyz answers 200. The callback secret goes in the
// environment (FANFLOW_CALLBACK_SECRET), not on the command line.
func startOrchestrator(ctx context.Context, bin string, args func(listen string) []string, logPath string, probe *fasthttp.Client) (*child, string, error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, "", err
	}
	c, err := startChild("fanflow", bin, args(addr), []string{"FANFLOW_CALLBACK_SECRET=" + randomHex(32)}, logPath)
	if err != nil {
		return nil, "", err
	}
	base := "http://" + addr
	err = c.waitReady(ctx, func() error {
		status, body, err := probe.GetTimeout(nil, base+"/readyz", time.Second)
		switch {
		case err != nil:
			return err
		case status != fasthttp.StatusOK:
			return fmt.Errorf("/readyz answered %d: %s", status, body)
		}
		return nil
	})
	if err != nil {
		_ = c.stop(stopGrace)
		return nil, "", err
	}
	return c, base, nil
}

// LogSummary counts the warnings and errors an orchestrator logged during
// the run (it runs with --log-level warn and JSON logs).
type LogSummary struct {
	Warnings int `json:"warnings"`
	Errors   int `json:"errors"`
	// Messages counts log lines by "LEVEL message", at most maxLogMessages
	// distinct ones; Other counts the lines left out.
	Messages map[string]int `json:"messages,omitempty"`
	Other    int            `json:"other,omitempty"`
}

const maxLogMessages = 20

// summarizeLog reads a JSON log (one object per line) and counts its
// warnings and errors. Lines that are not JSON count as errors: a panic
// or a crash writes those.
func summarizeLog(r io.Reader) LogSummary {
	s := LogSummary{Messages: map[string]int{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		var rec struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		key := ""
		if err := json.Unmarshal(line, &rec); err != nil {
			s.Errors++
			key = "UNSTRUCTURED " + truncate(string(line), 120)
		} else {
			switch rec.Level {
			case "WARN":
				s.Warnings++
			case "ERROR":
				s.Errors++
			default:
				continue
			}
			key = rec.Level + " " + rec.Msg
		}
		if _, ok := s.Messages[key]; ok || len(s.Messages) < maxLogMessages {
			s.Messages[key]++
		} else {
			s.Other++
		}
	}
	if len(s.Messages) == 0 {
		s.Messages = nil
	}
	return s
}

// summarizeLogFile is summarizeLog of the file at path.
func summarizeLogFile(path string) (LogSummary, error) {
	f, err := os.Open(path)
	if err != nil {
		return LogSummary{}, fmt.Errorf("read orchestrator log: %w", err)
	}
	defer f.Close()
	return summarizeLog(f), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// tailFile returns the last n lines of the file at path, or why not.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
