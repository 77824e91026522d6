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
)

// MinSecretLen is the shortest secret accepted, in bytes.
const MinSecretLen = 16

// Signer makes and checks tokens. It is immutable and safe for concurrent use.
type Signer struct{ key []byte }

// New returns a Signer for secret, which must be at least MinSecretLen bytes.
func New(secret []byte) (*Signer, error) {
	if len(secret) < MinSecretLen {
		return nil, errors.New("token: callback secret must be at least 16 bytes")
	}
	return &Signer{key: append([]byte(nil), secret...)}, nil
}

// RandomSecret returns a new 32-byte secret.
func RandomSecret() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return b
}

// Token returns the token of one job of one order.
func (s *Signer) Token(orderID, jobID string) string {
	return base64.RawURLEncoding.EncodeToString(s.mac(orderID, jobID))
}

// Valid reports whether tok is the token of that order's job, comparing in
// constant time.
func (s *Signer) Valid(orderID, jobID, tok string) bool {
	got, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return false
	}
	return hmac.Equal(got, s.mac(orderID, jobID))
}

func (s *Signer) mac(orderID, jobID string) []byte {
	h := hmac.New(sha256.New, s.key)
	h.Write([]byte(orderID))
	h.Write([]byte{0})
	h.Write([]byte(jobID))
	return h.Sum(nil)
}
