// Package cursor encodes listing positions shared by the persistence
// backends: a position is (creation time in unix milliseconds, order id), and
// a listing continues strictly after it in (CreatedAt desc, OrderID desc)
// order. The encoding is opaque to callers.
package cursor

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"

	"github.com/fanflow/fanflow/persistence"
)

// Pos is a position in a listing.
type Pos struct {
	// MS is the order's creation time in unix milliseconds.
	MS int64
	// ID is the order id.
	ID string
}

// Encode returns the cursor for p.
func Encode(p Pos) string {
	b := make([]byte, 8, 8+len(p.ID))
	binary.BigEndian.PutUint64(b, uint64(p.MS))
	return base64.RawURLEncoding.EncodeToString(append(b, p.ID...))
}

// Decode parses a cursor made by Encode. An empty cursor returns ok false.
// Anything undecodable returns an error wrapping persistence.ErrBadCursor.
func Decode(s string) (p Pos, ok bool, err error) {
	if s == "" {
		return Pos{}, false, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 9 {
		return Pos{}, false, fmt.Errorf("%w: %q", persistence.ErrBadCursor, s)
	}
	return Pos{MS: int64(binary.BigEndian.Uint64(b)), ID: string(b[8:])}, true, nil
}

// Before reports whether a sorts before b in listing order (newest first):
// a later creation time, or the same and a greater id.
func Before(a, b Pos) bool {
	if a.MS != b.MS {
		return a.MS > b.MS
	}
	return a.ID > b.ID
}
