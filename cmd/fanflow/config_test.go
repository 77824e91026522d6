package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// loadConfig reads a Config as serve does, from a YAML file (if yaml is not
// empty) and args; the environment is the test's.
func loadConfig(t *testing.T, yaml string, args ...string) Config {
	t.Helper()
	file := ""
	if yaml != "" {
		file = filepath.Join(t.TempDir(), "fanflow.yaml")
		if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := defaultConfig()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	c.bindFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := c.load(fs, file); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConfig_passivateAfterFromDefaultsYAMLEnvAndFlag(t *testing.T) {
	if got := loadConfig(t, "").PassivateAfter; got != time.Minute {
		t.Errorf("default: %s, want 1m", got)
	}
	if got := loadConfig(t, "passivateAfter: 30s\n").PassivateAfter; got != 30*time.Second {
		t.Errorf("YAML: %s, want 30s", got)
	}
	t.Setenv("FANFLOW_PASSIVATE_AFTER", "0s")
	if got := loadConfig(t, "passivateAfter: 30s\n").PassivateAfter; got != 0 {
		t.Errorf("environment over YAML: %s, want 0 (off)", got)
	}
	if got := loadConfig(t, "", "--passivate-after", "2m").PassivateAfter; got != 2*time.Minute {
		t.Errorf("flag over environment: %s, want 2m", got)
	}
}
