// Package redistest runs a real redis-server for tests: on a free loopback
// port, in the test's temporary directory, stopped when the test ends.
//
// When no redis-server is on PATH, Start skips the test with a loud message;
// when the environment variable CI is set, it fails the test instead.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long Start and Restart wait for PING to answer.
const startTimeout = 10 * time.Second

// Server is one redis-server process owned by a test. Its methods are not
// safe for concurrent use; call them from the test goroutine.
type Server struct {
	tb   testing.TB
	bin  string
	args []string
	dir  string
	port int
	cmd  *exec.Cmd
	exit chan struct{} // closed when cmd has exited
}

// Start starts redis-server with these arguments, then args (a later
// argument overrides an earlier one, e.g. "--appendonly", "yes"):
//
//	--port N --bind 127.0.0.1 --save "" --appendonly no --dir <tb.TempDir()> --logfile <dir>/redis.log
//
// It waits until the server answers PING and registers a cleanup that
// kills it. tb's test is skipped (or failed, under CI) when there is no
// redis-server on PATH.
func Start(tb testing.TB, args ...string) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		const msg = "redistest: redis-server not found on PATH; install Redis (e.g. apt-get install redis-server)"
		if os.Getenv("CI") != "" {
			tb.Fatal(msg + ". FAILING because CI is set.")
		}
		tb.Skip(msg + " to run this test. SKIPPING the Redis tests!")
	}
	s := &Server{tb: tb, bin: bin, args: args, dir: tb.TempDir(), port: freePort(tb)}
	tb.Cleanup(func() {
		if s.running() {
			s.Kill()
		}
	})
	s.start()
	return s
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("redistest: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL returns the server's redis:// URL, database 0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Dir returns the server's working directory (RDB and AOF files).
func (s *Server) Dir() string { return s.dir }

func (s *Server) running() bool {
	if s.exit == nil {
		return false
	}
	select {
	case <-s.exit:
		return false
	default:
		return true
	}
}

func (s *Server) start() {
	s.tb.Helper()
	logFile := filepath.Join(s.dir, "redis.log")
	args := append([]string{
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no",
		"--dir", s.dir, "--logfile", logFile,
	}, s.args...)
	cmd := exec.Command(s.bin, args...)
	if err := cmd.Start(); err != nil {
		s.tb.Fatalf("redistest: start redis-server: %v", err)
	}
	s.cmd, s.exit = cmd, make(chan struct{})
	go func(exit chan struct{}) {
		cmd.Wait()
		close(exit)
	}(s.exit)

	deadline := time.Now().Add(startTimeout)
	for {
		err := ping(s.Addr())
		if err == nil {
			return
		}
		select {
		case <-s.exit:
			log, _ := os.ReadFile(logFile)
			s.tb.Fatalf("redistest: redis-server exited at start (%v):\n%s", cmd.ProcessState, log)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Kill()
			s.tb.Fatalf("redistest: redis-server on %s did not answer PING within %v: %v", s.Addr(), startTimeout, err)
		}
	}
}

// ping sends one PING over a fresh connection and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// Stop shuts the server down gracefully (SIGTERM) and waits for it to exit.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

// Kill kills the server (SIGKILL) and waits for it to exit.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

func (s *Server) signal(sig syscall.Signal) {
	s.tb.Helper()
	if !s.running() {
		return
	}
	if err := s.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.tb.Errorf("redistest: signal redis-server: %v", err)
	}
	select {
	case <-s.exit:
	case <-time.After(startTimeout):
		s.tb.Errorf("redistest: redis-server did not exit within %v of %v", startTimeout, sig)
		s.cmd.Process.Kill()
		<-s.exit
	}
}

// Restart stops the server if it is running and starts it again on the same
// port, in the same directory, with the same arguments.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	s.start()
}
