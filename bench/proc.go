package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// Linux exports these fields in USER_HZ, which is 100 on every
// architecture Go supports (getconf CLK_TCK).
const clockTicks = 100

// cpuTimes are the CPU times of one process, from /proc/<pid>/stat.
type cpuTimes struct {
	User, System time.Duration
}

// Total is user plus system time.
func (c cpuTimes) Total() time.Duration { return c.User + c.System }

// parseStat reads utime and stime (fields 14 and 15) from the contents of
// /proc/<pid>/stat. The second field, the command name in parentheses, may
// itself hold spaces and parentheses, so fields are counted from the last
// ')'.
func parseStat(b []byte) (cpuTimes, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return cpuTimes{}, errors.New("no ')' closing the command name")
	}
	// After ") " come fields 3 (state), 4, … so field k is rest[k-3].
	rest := bytes.Fields(b[i+1:])
	if len(rest) < 13 {
		return cpuTimes{}, fmt.Errorf("%d fields after the command name, want at least 13", len(rest))
	}
	var t [2]time.Duration
	for k, f := range [2]int{14, 15} {
		n, err := strconv.ParseUint(string(rest[f-3]), 10, 63)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("field %d: %w", f, err)
		}
		t[k] = time.Duration(n) * time.Second / clockTicks
	}
	return cpuTimes{User: t[0], System: t[1]}, nil
}

// parsePeakRSS reads VmHWM, the peak resident set size, in bytes, from the
// contents of /proc/<pid>/status ("VmHWM:\t  12345 kB").
func parsePeakRSS(b []byte) (uint64, error) {
	for line := range bytes.Lines(b) {
		v, ok := bytes.CutPrefix(line, []byte("VmHWM:"))
		if !ok {
			continue
		}
		f := bytes.Fields(v)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("VmHWM line %q: want a number and kB", bytes.TrimSpace(line))
		}
		kb, err := strconv.ParseUint(string(f[0]), 10, 54)
		if err != nil {
			return 0, fmt.Errorf("VmHWM: %w", err)
		}
		return kb << 10, nil
	}
	return 0, errors.New("no VmHWM line (a kernel thread, or not Linux?)")
}

// readCPU returns the CPU times of process pid so far.
func readCPU(pid int) (cpuTimes, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/stat"
	b, err := os.ReadFile(path)
	if err != nil {
		return cpuTimes{}, fmt.Errorf("read CPU time: %w", err)
	}
	t, err := parseStat(b)
	if err != nil {
		return cpuTimes{}, fmt.Errorf("parse %s: %w", path, err)
	}
	return t, nil
}

// readPeakRSS returns the peak resident set size of process pid, in bytes.
func readPeakRSS(pid int) (uint64, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/status"
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read peak RSS: %w", err)
	}
	n, err := parsePeakRSS(b)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", path, err)
	}
	return n, nil
}
