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
//
// The bytes sit behind a pointer: fmt cannot call String on an unexported
// struct field, and prints a nested pointer as an address, so a Secret inside
// another struct still does not print its bytes. Copies of a Secret share the
// bytes, and Clear on any copy clears them for all.
type Secret struct {
	p *[]byte
}

// New wraps b. The Secret takes ownership of b: the caller must not keep it.
func New(b []byte) Secret { return Secret{p: &b} }

// Copy wraps a copy of b, for when the caller keeps b.
func Copy(b []byte) Secret { return New(append([]byte(nil), b...)) }

// Zero returns a secret of n zero bytes (the RFC's "0" vector of length Nh).
func Zero(n int) Secret { return New(make([]byte, n)) }

// Bytes returns the secret's bytes without copying. Use it only to feed a
// cryptographic primitive or an encoder of key material.
func (s Secret) Bytes() []byte {
	if s.p == nil {
		return nil
	}
	return *s.p
}

// Len is the secret's length in bytes.
func (s Secret) Len() int { return len(s.Bytes()) }

// IsZero reports whether the secret is empty (never set, or cleared).
func (s Secret) IsZero() bool { return s.Len() == 0 }

// Equal compares in constant time.
func (s Secret) Equal(o Secret) bool { return subtle.ConstantTimeCompare(s.Bytes(), o.Bytes()) == 1 }

// EqualBytes compares with raw bytes in constant time.
func (s Secret) EqualBytes(b []byte) bool { return subtle.ConstantTimeCompare(s.Bytes(), b) == 1 }

// Clear overwrites the bytes with zeros and empties the secret (and every
// copy of it).
func (s *Secret) Clear() {
	if s.p == nil {
		return
	}
	clear(*s.p)
	*s.p = nil
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
