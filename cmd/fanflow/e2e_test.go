package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fanflow/fanflow/internal/testbin"
	"github.com/fanflow/fanflow/order"
)

// These tests drive the real fanflow binary over real loopback HTTP.

const testTimeout = 60 * time.Second

var binary string

func TestMain(m *testing.M) { testbin.Main(m, &binary) }

// proc is one fanflow process started by a test.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string
	log  *syncBuffer
	done chan struct{}
}

// syncBuffer collects a process's output safely while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs `fanflow args...` and, for serve, waits until /readyz answers 200.
func start(t *testing.T, addr string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	p := &proc{t: t, cmd: cmd, addr: addr, log: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("output of %v:\n%s", args, tail(p.log.String(), 60))
		}
	})
	path := "/readyz"
	if args[0] == "mock" {
		path = "/" // any answer means it listens
	}
	p.waitHTTP(path)
	return p
}

func (p *proc) waitHTTP(path string) {
	p.t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		resp, err := http.Get("http://" + p.addr + path)
		if err == nil {
			resp.Body.Close()
			if path != "/readyz" || resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-p.done:
			p.t.Fatalf("fanflow exited early:\n%s", p.log.String())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("fanflow not ready at %s%s: %v", p.addr, path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill ends the process with SIGKILL, as a crash would, and waits for it.
func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// stop ends the process with SIGTERM and returns its exit error.
func (p *proc) stop() error {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.done:
	case <-time.After(testTimeout):
		p.t.Fatal("fanflow did not stop on SIGTERM")
	}
	if p.cmd.ProcessState.Success() {
		return nil
	}
	return fmt.Errorf("fanflow exited with %v", p.cmd.ProcessState)
}

var client = &http.Client{Timeout: 30 * time.Second}

// create posts an order and returns its 202 body.
func create(t testing.TB, addr, body string) (order.Order, error) {
	resp, err := client.Post("http://"+addr+"/v1/parallelCallbacks", "application/json", strings.NewReader(body))
	if err != nil {
		return order.Order{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return order.Order{}, fmt.Errorf("create: HTTP %d: %s", resp.StatusCode, b)
	}
	var o order.Order
	if err := json.Unmarshal(b, &o); err != nil {
		return o, fmt.Errorf("create: %w: %s", err, b)
	}
	if loc := resp.Header.Get("Location"); loc != "/v1/parallelCallbacks/"+o.OrderID {
		return o, fmt.Errorf("create: Location %q", loc)
	}
	return o, nil
}

// get reads an order.
func get(addr, id string) (order.Order, int, error) {
	resp, err := client.Get("http://" + addr + "/v1/parallelCallbacks/" + id)
	if err != nil {
		return order.Order{}, 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var o order.Order
	if resp.StatusCode == 200 {
		err = json.Unmarshal(b, &o)
	}
	return o, resp.StatusCode, err
}

// waitAll polls until every order has a terminal status, and returns them.
func waitAll(t *testing.T, addr string, ids []string) map[string]order.Order {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	done := map[string]order.Order{}
	for len(done) < len(ids) {
		for _, id := range ids {
			if _, ok := done[id]; ok {
				continue
			}
			o, code, err := get(addr, id)
			if err == nil && code == 200 && o.Status.Terminal() {
				done[id] = o
			}
		}
		if len(done) == len(ids) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d orders finished within %s", len(done), len(ids), testTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return done
}

// logLines returns the JSON log records with the given message.
func logLines(t *testing.T, out, msg string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		if rec["msg"] == msg {
			lines = append(lines, rec)
		}
	}
	return lines
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// createMany creates n orders from n goroutines and returns their ids.
func createMany(t *testing.T, addr string, n int, body string) []string {
	t.Helper()
	ids := make([]string, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, err := create(t, addr, body)
			if err != nil {
				errs <- err
				return
			}
			ids[i] = o.OrderID
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return ids
}

func TestE2E_concurrentOrdersAllCompleteAndLogOnce(t *testing.T) {
	const n = 200
	addr := freeAddr(t)
	p := start(t, addr, "serve", "--listen", addr, "--store", "memory", "--time-scale", "0", "--log-format", "json")
	ids := createMany(t, addr, n, `{"parameters":{"customer":"e2e"}}`)
	for id, o := range waitAll(t, addr, ids) {
		if o.Status != order.Completed {
			t.Errorf("order %s ended %s: %+v", id, o.Status, o.Error)
		}
		for _, j := range o.Jobs {
			if j.Status != order.JobCompleted {
				t.Errorf("order %s job %s is %s", id, j.Type, j.Status)
			}
		}
	}
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	perOrder := map[string]int{}
	for _, rec := range logLines(t, p.log.String(), "All BatchJob Completed!!") {
		id, _ := rec["orderId"].(string)
		perOrder[id]++
	}
	for _, id := range ids {
		if perOrder[id] != 1 {
			t.Errorf("order %s logged completion %d times", id, perOrder[id])
		}
	}
	if len(perOrder) != n {
		t.Errorf("completion logged for %d orders, want %d", len(perOrder), n)
	}
}
