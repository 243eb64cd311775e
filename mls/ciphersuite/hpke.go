package ciphersuite

import (
	"crypto/hpke"
	"crypto/rand"
	"errors"
	"fmt"
	"io"

	"github.com/cloudflare/circl/dh/x448"
	"github.com/mlsengine/mlsengine/mls/secret"
)

// HPKEPrivateKey is a parsed HPKE private key of one KEM, with its public
// key. It is immutable and safe for concurrent use. It never prints its key
// material: fmt (every verb) and log/slog show it redacted.
type HPKEPrivateKey struct {
	kemID uint16
	pub   []byte
	// The key material is two pointers away, see hpkeKey.
	k *hpkeKey
}

// hpkeKey holds only pointers and interfaces. When a struct holding an
// HPKEPrivateKey in an unexported field is printed, fmt cannot call our
// redacting methods and walks the fields by reflection; with a verb such as
// %s it even dereferences the pointer k (its bad-verb path prints the value
// at depth 0). The fields below are then one level deeper, where fmt prints
// pointers as addresses only.
type hpkeKey struct {
	std  hpke.PrivateKey // DHKEM over crypto/ecdh (all KEMs but X448)
	x448 *x448.Key       // clamped scalar (DHKEM(X448) only)
}

// PublicKey returns SerializePublicKey of the key's public half (RFC 9180
// §7.1.1), in a new slice.
func (k *HPKEPrivateKey) PublicKey() []byte {
	if k == nil {
		return nil
	}
	return append([]byte(nil), k.pub...)
}

// Bytes returns SerializePrivateKey of the key (RFC 9180 §7.1.2). X25519
// and X448 keys come back clamped, as §7.1.2 requires, so the bytes may
// differ from those the key was parsed or derived from while denoting the
// same key.
func (k *HPKEPrivateKey) Bytes() secret.Secret {
	if k == nil || k.k == nil {
		return secret.Secret{}
	}
	if k.kemID == kemX448 {
		return secret.Copy(k.k.x448[:])
	}
	b, err := k.k.std.Bytes()
	if err != nil {
		return secret.Secret{}
	}
	return secret.New(b)
}

// usableBy reports whether k is a well-formed key of s's KEM.
func (k *HPKEPrivateKey) usableBy(s *Suite) error {
	if k == nil || k.k == nil {
		return fmt.Errorf("%w: nil HPKE private key", ErrInvalidKey)
	}
	if k.kemID != s.kemID {
		return fmt.Errorf("%w: HPKE key is for KEM 0x%04x, suite %s uses 0x%04x", ErrInvalidKey, k.kemID, s.name, s.kemID)
	}
	return nil
}

func (s *Suite) wrapStdKey(k hpke.PrivateKey) *HPKEPrivateKey {
	return &HPKEPrivateKey{kemID: s.kemID, pub: k.PublicKey().Bytes(), k: &hpkeKey{std: k}}
}

// DeriveKeyPair is the KEM's DeriveKeyPair (RFC 9180 §7.1.3). ikm may have
// any length; MLS passes Nh-byte node secrets (§7.4).
func (s *Suite) DeriveKeyPair(ikm []byte) (*HPKEPrivateKey, error) {
	if s.kemID == kemX448 {
		return s.x448DeriveKeyPair(ikm), nil
	}
	k, err := s.stdKEM.DeriveKeyPair(ikm)
	if err != nil {
		// Only P-256/P-384/P-521 can fail, after 256 rejected candidates.
		return nil, fmt.Errorf("%w: DeriveKeyPair: %w", ErrInvalidKey, err)
	}
	return s.wrapStdKey(k), nil
}

// GenerateKeyPair reads Nsk bytes of input keying material from rand
// (crypto/rand.Reader if rand is nil) and returns DeriveKeyPair of them, so
// that a deterministic reader gives reproducible keys.
func (s *Suite) GenerateKeyPair(rand io.Reader) (*HPKEPrivateKey, error) {
	ikm := make([]byte, s.nsk)
	defer clear(ikm)
	if err := readRandom(rand, ikm); err != nil {
		return nil, err
	}
	return s.DeriveKeyPair(ikm)
}

// readRandom fills b from r, or from the system CSPRNG if r is nil.
func readRandom(r io.Reader, b []byte) error {
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("mls: reading randomness: %w", err)
	}
	return nil
}

// ParseHPKEPrivateKey is DeserializePrivateKey (RFC 9180 §7.1.2): an Nsk-byte
// key of the suite's KEM. NIST-curve scalars must be in [1, order-1].
func (s *Suite) ParseHPKEPrivateKey(b []byte) (*HPKEPrivateKey, error) {
	if s.kemID == kemX448 {
		return s.x448ParsePrivateKey(b)
	}
	if len(b) > 0 && len(b) < s.nsk && s.kemID != kemX25519 {
		// A NIST-curve private key is a big-endian scalar; some encoders
		// drop its leading zero bytes (the official P-521 passive-client
		// vectors hold 65-byte keys), so restore the fixed width.
		padded := make([]byte, s.nsk)
		copy(padded[s.nsk-len(b):], b)
		defer clear(padded)
		b = padded
	}
	if len(b) != s.nsk {
		return nil, fmt.Errorf("%w: HPKE private key is %d bytes, want %d", ErrInvalidKey, len(b), s.nsk)
	}
	k, err := s.stdKEM.NewPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	return s.wrapStdKey(k), nil
}

// ValidateHPKEPublicKey checks that pub is a well-formed public key of the
// suite's KEM (DeserializePublicKey, RFC 9180 §7.1.1): the right length
// and, for the NIST curves, an uncompressed point on the curve other than
// the identity. Like RFC 9180 (§7.1.4), it accepts any 32- or 56-byte X25519
// or X448 string; a low-order point makes encryption to it fail instead.
func (s *Suite) ValidateHPKEPublicKey(pub []byte) error {
	if s.kemID == kemX448 {
		if len(pub) != x448Size {
			return fmt.Errorf("%w: X448 public key is %d bytes, want %d", ErrInvalidKey, len(pub), x448Size)
		}
		return nil
	}
	_, err := s.parseStdPublicKey(pub)
	return err
}

func (s *Suite) parseStdPublicKey(pub []byte) (hpke.PublicKey, error) {
	pk, err := s.stdKEM.NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE public key: %w", ErrInvalidKey, err)
	}
	return pk, nil
}

// setupStdS is SetupBaseS (RFC 9180 §5.1.1) through the standard library.
func (s *Suite) setupStdS(pub, info []byte) ([]byte, *hpke.Sender, error) {
	pk, err := s.parseStdPublicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	enc, snd, err := hpke.NewSender(pk, s.stdKDF, s.stdAEAD, info)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: HPKE encapsulation: %w", ErrInvalidKey, err)
	}
	return enc, snd, nil
}

// setupStdR is SetupBaseR (RFC 9180 §5.1.1) through the standard library.
func (s *Suite) setupStdR(priv *HPKEPrivateKey, kemOutput, info []byte) (*hpke.Recipient, error) {
	r, err := hpke.NewRecipient(kemOutput, priv.k.std, s.stdKDF, s.stdAEAD, info)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE decapsulation: %w", ErrDecryption, err)
	}
	return r, nil
}

// HPKESeal is single-shot SealBase (RFC 9180 §6.1): it encapsulates to pub
// and encrypts plaintext with info and aad, returning the KEM output (enc)
// and the ciphertext. The ephemeral key comes from the system CSPRNG.
func (s *Suite) HPKESeal(pub, info, aad, plaintext []byte) (kemOutput, ciphertext []byte, err error) {
	if s.kemID == kemX448 {
		enc, c, err := s.x448SetupS(pub, info, nil)
		if err != nil {
			return nil, nil, err
		}
		return enc, c.seal(aad, plaintext), nil
	}
	enc, snd, err := s.setupStdS(pub, info)
	if err != nil {
		return nil, nil, err
	}
	ct, err := snd.Seal(aad, plaintext)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: HPKE seal: %w", err)
	}
	return enc, ct, nil
}

// HPKEOpen is single-shot OpenBase (RFC 9180 §6.1). Any failure, including
// a malformed kemOutput, matches ErrDecryption; a key of the wrong KEM
// matches ErrInvalidKey.
func (s *Suite) HPKEOpen(priv *HPKEPrivateKey, kemOutput, info, aad, ciphertext []byte) ([]byte, error) {
	if err := priv.usableBy(s); err != nil {
		return nil, err
	}
	if s.kemID == kemX448 {
		c, err := s.x448SetupR(priv, kemOutput, info)
		if err != nil {
			return nil, err
		}
		return c.open(aad, ciphertext)
	}
	r, err := s.setupStdR(priv, kemOutput, info)
	if err != nil {
		return nil, err
	}
	pt, err := r.Open(aad, ciphertext)
	if err != nil {
		return nil, ErrDecryption
	}
	return pt, nil
}

// checkExportLen bounds an exporter length: LabeledExpand encodes it in two
// bytes and HKDF-Expand yields at most 255*Nh bytes (RFC 9180 §5.3).
func (s *Suite) checkExportLen(length int) error {
	if length < 0 || length > 0xffff || length > 255*s.nh {
		return fmt.Errorf("%w: HPKE export length %d", ErrInvalidLength, length)
	}
	return nil
}

// HPKEExportSender runs SetupBaseS(pub, info) and exports length bytes with
// exporterContext from the new context (RFC 9180 §5.3), returning the KEM
// output too. MLS uses it for external initialisation (§8.3). The ephemeral
// key comes from the system CSPRNG.
func (s *Suite) HPKEExportSender(pub, info []byte, exporterContext string, length int) (kemOutput, exported []byte, err error) {
	if err := s.checkExportLen(length); err != nil {
		return nil, nil, err
	}
	if s.kemID == kemX448 {
		enc, c, err := s.x448SetupS(pub, info, nil)
		if err != nil {
			return nil, nil, err
		}
		return enc, c.export([]byte(exporterContext), length), nil
	}
	enc, snd, err := s.setupStdS(pub, info)
	if err != nil {
		return nil, nil, err
	}
	out, err := snd.Export(exporterContext, length)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: HPKE export: %w", ErrInvalidLength, err)
	}
	return enc, out, nil
}

// HPKEExportReceiver runs SetupBaseR(kemOutput, priv, info) and exports
// length bytes with exporterContext (RFC 9180 §5.3). A malformed kemOutput
// matches ErrDecryption.
func (s *Suite) HPKEExportReceiver(priv *HPKEPrivateKey, kemOutput, info []byte, exporterContext string, length int) ([]byte, error) {
	if err := priv.usableBy(s); err != nil {
		return nil, err
	}
	if err := s.checkExportLen(length); err != nil {
		return nil, err
	}
	if s.kemID == kemX448 {
		c, err := s.x448SetupR(priv, kemOutput, info)
		if err != nil {
			return nil, err
		}
		return c.export([]byte(exporterContext), length), nil
	}
	r, err := s.setupStdR(priv, kemOutput, info)
	if err != nil {
		return nil, err
	}
	out, err := r.Export(exporterContext, length)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE export: %w", ErrInvalidLength, err)
	}
	return out, nil
}

// EncryptWithLabel is the §5.1.3 function
//
//	EncryptWithLabel(PublicKey, Label, Context, Plaintext) =
//	    SealBase(PublicKey, EncryptContext, "", Plaintext)
//
// with EncryptContext {opaque label<V> = "MLS 1.0 " + Label; opaque
// context<V>}.
func (s *Suite) EncryptWithLabel(pub []byte, label string, context, plaintext []byte) (kemOutput, ciphertext []byte, err error) {
	info, err := labeled(label, context)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: EncryptContext too long", err)
	}
	return s.HPKESeal(pub, info, nil, plaintext)
}

// DecryptWithLabel is the §5.1.3 function
//
//	DecryptWithLabel(PrivateKey, Label, Context, KEMOutput, Ciphertext) =
//	    OpenBase(KEMOutput, PrivateKey, EncryptContext, "", Ciphertext)
func (s *Suite) DecryptWithLabel(priv *HPKEPrivateKey, label string, context, kemOutput, ciphertext []byte) ([]byte, error) {
	info, err := labeled(label, context)
	if err != nil {
		return nil, errors.Join(ErrDecryption, err)
	}
	return s.HPKEOpen(priv, kemOutput, info, nil, ciphertext)
}
