// Package secret holds the type MLS secrets live in. A Secret never prints
// its bytes: String, GoString, Format (every verb) and slog all redact, so a
// secret that reaches a log line or an error string shows as "[secret]".
//
// Clear overwrites the bytes. In Go this is best effort: the garbage
// collector may have copied the backing array before, and a caller that took
// Bytes() holds an alias. Owners clear secrets when the protocol deletes them.
package secret

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
)

// Secret is an owned, redacted byte string. The zero value is an empty secret.
type Secret struct {
	b []byte
}

// New wraps b. The Secret takes ownership of b: the caller must not keep it.
func New(b []byte) Secret { return Secret{b: b} }

// Copy wraps a copy of b, for when the caller keeps b.
func Copy(b []byte) Secret { return Secret{b: append([]byte(nil), b...)} }

// Zero returns a secret of n zero bytes (the RFC's "0" vector of length Nh).
func Zero(n int) Secret { return Secret{b: make([]byte, n)} }

// Bytes returns the secret's bytes without copying. Use it only to feed a
// cryptographic primitive or an encoder of key material.
func (s Secret) Bytes() []byte { return s.b }

// Len is the secret's length in bytes.
func (s Secret) Len() int { return len(s.b) }

// IsZero reports whether the secret is empty (never set, or cleared).
func (s Secret) IsZero() bool { return len(s.b) == 0 }

// Equal compares in constant time.
func (s Secret) Equal(o Secret) bool { return subtle.ConstantTimeCompare(s.b, o.b) == 1 }

// EqualBytes compares with raw bytes in constant time.
func (s Secret) EqualBytes(b []byte) bool { return subtle.ConstantTimeCompare(s.b, b) == 1 }

// Clear overwrites the bytes with zeros and empties the secret.
func (s *Secret) Clear() {
	clear(s.b)
	s.b = nil
}

const redacted = "[secret]"

// String redacts.
func (Secret) String() string { return redacted }

// GoString redacts.
func (Secret) GoString() string { return "secret.Secret{" + redacted + "}" }

// Format redacts for every verb, including %x and %v.
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue redacts in log/slog output.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText redacts, so encoding/json and similar never emit the bytes.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
