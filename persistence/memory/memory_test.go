package memory_test

import (
	"testing"

	"github.com/fanflow/fanflow/persistence"
	"github.com/fanflow/fanflow/persistence/memory"
	"github.com/fanflow/fanflow/persistence/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) persistence.Store {
		s := memory.New()
		t.Cleanup(func() { s.Close() })
		return s
	}, storetest.Features{})
}

// BenchmarkWrites: go test -run '^$' -bench Writes ./persistence/memory/
func BenchmarkWrites(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) persistence.Store { return memory.New() })
}
