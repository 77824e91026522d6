// Package claim holds what the backends share about Store.Claim and
// Store.Release.
package claim

import (
	"errors"
	"fmt"
	"time"
)

// Check validates the arguments of a claim: key must not be empty and ttl
// must not be negative. Its error names neither the operation nor the
// backend; callers wrap it.
func Check(key string, ttl time.Duration) error {
	if key == "" {
		return errors.New("empty key")
	}
	if ttl < 0 {
		return fmt.Errorf("negative ttl %v", ttl)
	}
	return nil
}
