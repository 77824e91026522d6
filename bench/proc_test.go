package bench

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// A /proc/<pid>/stat line of a process whose name holds spaces and
// parentheses; utime is 1234 ticks, stime 56.
const fakeStat = "4242 (fan (flow) x) S 1 4242 4242 0 -1 4194560 1500 0 0 0 1234 56 0 0 20 0 9 0 106238 1262354432 22000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"

func TestParseStat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		in      string
		want    cpuTimes
		wantErr string
	}{
		{"name with spaces and parentheses", fakeStat, cpuTimes{User: 12340 * time.Millisecond, System: 560 * time.Millisecond}, ""},
		{"plain", "1 (init) S 0 1 1 0 -1 4194560 0 0 0 0 7 3 0 0 20 0 1 0 1 0 0", cpuTimes{User: 70 * time.Millisecond, System: 30 * time.Millisecond}, ""},
		{"no closing parenthesis", "1 (init S 0 1", cpuTimes{}, "no ')'"},
		{"too few fields", "1 (init) S 0 1 1 0", cpuTimes{}, "fields after the command name"},
		{"utime not a number", "1 (init) S 0 1 1 0 -1 4194560 0 0 0 0 x 3 0", cpuTimes{}, "field 14"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("parseStat = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParsePeakRSS(t *testing.T) {
	t.Parallel()
	status := "Name:\tfanflow\nState:\tS (sleeping)\nVmPeak:\t 1262356 kB\nVmHWM:\t   89052 kB\nVmRSS:\t   88000 kB\nThreads:\t9\n"
	for _, tc := range []struct {
		name    string
		in      string
		want    uint64
		wantErr string
	}{
		{"status file", status, 89052 << 10, ""},
		{"no VmHWM", "Name:\tkthreadd\nState:\tS (sleeping)\n", 0, "no VmHWM"},
		{"no unit", "VmHWM:\t 12\n", 0, "want a number and kB"},
		{"not a number", "VmHWM:\t x kB\n", 0, "VmHWM"},
		{"last line without newline", "Name:\tx\nVmHWM:\t 1 kB", 1024, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parsePeakRSS([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("parsePeakRSS = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestReadProc_ofThisProcess(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	if _, err := readCPU(os.Getpid()); err != nil {
		t.Errorf("readCPU: %v", err)
	}
	if rss, err := readPeakRSS(os.Getpid()); err != nil || rss == 0 {
		t.Errorf("readPeakRSS = %d, %v", rss, err)
	}
	if _, err := readCPU(-1); err == nil {
		t.Error("readCPU(-1) succeeded")
	}
}

func TestSummarizeLog_countsWarningsAndErrors(t *testing.T) {
	t.Parallel()
	log := `{"time":"t","level":"WARN","msg":"create failed","status":503}
{"time":"t","level":"INFO","msg":"fanflow listening"}
{"time":"t","level":"WARN","msg":"create failed","status":503}
{"time":"t","level":"ERROR","msg":"recovery incomplete"}

panic: boom
`
	got := summarizeLog(strings.NewReader(log))
	if got.Warnings != 2 || got.Errors != 2 {
		t.Errorf("warnings %d, errors %d; want 2 and 2 (the panic line is an error)", got.Warnings, got.Errors)
	}
	want := map[string]int{"WARN create failed": 2, "ERROR recovery incomplete": 1, "UNSTRUCTURED panic: boom": 1}
	if len(got.Messages) != len(want) {
		t.Fatalf("messages = %v, want %v", got.Messages, want)
	}
	for k, v := range want {
		if got.Messages[k] != v {
			t.Errorf("messages[%q] = %d, want %d", k, got.Messages[k], v)
		}
	}
}
