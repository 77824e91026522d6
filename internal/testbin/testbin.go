// Package testbin builds the fanflow binary for the tests that drive it as
// a real process (end-to-end tests and the bench's tests).
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Main is a TestMain: it builds github.com/fanflow/fanflow/cmd/fanflow into a
// temporary directory, sets *binary to its path, runs the tests, removes the
// directory and exits with the tests' code.
func Main(m *testing.M, binary *string) {
	dir, err := os.MkdirTemp("", "fanflow-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testbin:", err)
		os.Exit(1)
	}
	*binary = filepath.Join(dir, "fanflow")
	build := exec.Command("go", "build", "-o", *binary, "github.com/fanflow/fanflow/cmd/fanflow")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "testbin: build fanflow:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
