package ciphersuite

import (
	"fmt"
	"log/slog"
)

// The redaction methods have value receivers so that they apply to both
// HPKEPrivateKey and *HPKEPrivateKey (and likewise for SigningKey).

const (
	redactedHPKE    = "ciphersuite.HPKEPrivateKey{[secret]}"
	redactedSigning = "ciphersuite.SigningKey{[secret]}"
)

// String redacts the key.
func (HPKEPrivateKey) String() string { return redactedHPKE }

// GoString redacts the key.
func (HPKEPrivateKey) GoString() string { return redactedHPKE }

// Format redacts the key for every verb, including %x and %#v.
func (HPKEPrivateKey) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redactedHPKE)) }

// LogValue redacts the key in log/slog output.
func (HPKEPrivateKey) LogValue() slog.Value { return slog.StringValue(redactedHPKE) }

// String redacts the key.
func (SigningKey) String() string { return redactedSigning }

// GoString redacts the key.
func (SigningKey) GoString() string { return redactedSigning }

// Format redacts the key for every verb, including %x and %#v.
func (SigningKey) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redactedSigning)) }

// LogValue redacts the key in log/slog output.
func (SigningKey) LogValue() slog.Value { return slog.StringValue(redactedSigning) }
