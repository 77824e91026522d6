// Package token signs and checks callback tokens: an HMAC-SHA256 of an
// order id and a job id under a server secret, so a callback proves it comes
// from the service that received that job's callout.
package token

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"sync"
)

// MinSecretLen is the shortest secret accepted, in bytes.
const MinSecretLen = 16

// Signer makes and checks tokens. It is safe for concurrent use.
type Signer struct {
	key  []byte
	macs sync.Pool // of hash.Hash keyed with key: hmac.New allocates
}

// New returns a Signer for secret, which must be at least MinSecretLen bytes.
func New(secret []byte) (*Signer, error) {
	if len(secret) < MinSecretLen {
		return nil, errors.New("token: callback secret must be at least 16 bytes")
	}
	s := &Signer{key: append([]byte(nil), secret...)}
	s.macs.New = func() any { return hmac.New(sha256.New, s.key) }
	return s, nil
}

// RandomSecret returns a new 32-byte secret.
func RandomSecret() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return b
}

// Token returns the token of one job of one order.
func (s *Signer) Token(orderID, jobID string) string {
	var sum [sha256.Size]byte
	return base64.RawURLEncoding.EncodeToString(s.mac(sum[:0], orderID, jobID))
}

// Valid reports whether tok is the token of that order's job, comparing in
// constant time.
func (s *Signer) Valid(orderID, jobID, tok string) bool {
	var got, want [sha256.Size]byte
	if base64.RawURLEncoding.DecodedLen(len(tok)) != len(got) {
		return false
	}
	if _, err := base64.RawURLEncoding.Decode(got[:], []byte(tok)); err != nil {
		return false
	}
	return hmac.Equal(got[:], s.mac(want[:0], orderID, jobID))
}

// mac appends the HMAC of the ids to dst.
func (s *Signer) mac(dst []byte, orderID, jobID string) []byte {
	h := s.macs.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(orderID))
	h.Write([]byte{0})
	h.Write([]byte(jobID))
	dst = h.Sum(dst)
	s.macs.Put(h)
	return dst
}
