package ciphersuite

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"

	"github.com/cloudflare/circl/sign/ed448"
	"github.com/mlsengine/mlsengine/mls/secret"
)

// SigningKey is a parsed signature private key of one signature scheme,
// with its public key. It is immutable and safe for concurrent use. It never
// prints its key material: fmt (every verb) and log/slog show it redacted.
type SigningKey struct {
	alg sigAlg
	pub []byte
	// The key material is two pointers away, for the reason given at
	// hpkeKey.
	k *signingKey
}

// signingKey holds one non-nil pointer; see hpkeKey for why pointers.
type signingKey struct {
	ed25519 *ed25519.PrivateKey
	ed448   *ed448.PrivateKey
	ecdsa   *ecdsa.PrivateKey
}

// PublicKey returns the SignaturePublicKey (§5.1.1) in a new slice: the
// RFC 8032 encoding for EdDSA, an uncompressed point for ECDSA.
func (k *SigningKey) PublicKey() []byte {
	if k == nil {
		return nil
	}
	return append([]byte(nil), k.pub...)
}

// Bytes returns the private key in the MLS test-vector encoding: the RFC
// 8032 seed for EdDSA, the fixed-length big-endian scalar for ECDSA.
func (k *SigningKey) Bytes() secret.Secret {
	if k == nil || k.k == nil {
		return secret.Secret{}
	}
	switch k.alg {
	case sigEd25519:
		return secret.Copy(k.k.ed25519.Seed())
	case sigEd448:
		return secret.Copy(k.k.ed448.Seed())
	default:
		b, err := k.k.ecdsa.Bytes()
		if err != nil {
			return secret.Secret{}
		}
		return secret.New(b)
	}
}

// sigPrivLen is the private key size of the suite's signature scheme.
func (s *Suite) sigPrivLen() int {
	switch s.sig {
	case sigEd25519:
		return ed25519.SeedSize
	case sigEd448:
		return ed448.SeedSize
	default:
		return (s.ecdsaCrv.Params().BitSize + 7) / 8
	}
}

// ParseSigningKey parses a private key of the suite's signature scheme: a
// 32-byte Ed25519 seed, a 57-byte Ed448 seed, or an ECDSA scalar as a
// fixed-length big-endian integer in [1, order-1].
func (s *Suite) ParseSigningKey(priv []byte) (*SigningKey, error) {
	n := s.sigPrivLen()
	if len(priv) < n && s.sig != sigEd25519 && s.sig != sigEd448 && len(priv) > 0 {
		// An ECDSA scalar is a big-endian integer; some encoders drop its
		// leading zero bytes (the official P-521 vectors hold a 65-byte
		// key), so restore the fixed width instead of refusing the key.
		padded := make([]byte, n)
		copy(padded[n-len(priv):], priv)
		defer clear(padded)
		priv = padded
	}
	if len(priv) != n {
		return nil, fmt.Errorf("%w: signature private key is %d bytes, want %d", ErrInvalidKey, len(priv), n)
	}
	k := &SigningKey{alg: s.sig, k: &signingKey{}}
	switch s.sig {
	case sigEd25519:
		p := ed25519.NewKeyFromSeed(priv)
		k.k.ed25519 = &p
		k.pub = append([]byte(nil), p[ed25519.SeedSize:]...)
	case sigEd448:
		p := ed448.NewKeyFromSeed(priv)
		k.k.ed448 = &p
		k.pub = append([]byte(nil), p[ed448.SeedSize:]...)
	default:
		p, err := ecdsa.ParseRawPrivateKey(s.ecdsaCrv, priv)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
		}
		pub, err := p.PublicKey.Bytes()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
		}
		k.k.ecdsa, k.pub = p, pub
	}
	return k, nil
}

// GenerateSigningKey generates a key of the suite's signature scheme from
// bytes read from rand (crypto/rand.Reader if rand is nil), so that a
// deterministic reader gives reproducible keys: an EdDSA seed is read
// directly; an ECDSA scalar is sampled by rejection from field-sized
// strings (the top bits of a P-521 string are masked first).
func (s *Suite) GenerateSigningKey(rand io.Reader) (*SigningKey, error) {
	b := make([]byte, s.sigPrivLen())
	defer clear(b)
	// Rejection fails with probability below 2^-32 per try for P-256 and
	// far less for P-384 and P-521; 64 failures mean a broken reader.
	for range 64 {
		if err := readRandom(rand, b); err != nil {
			return nil, err
		}
		if s.sig == sigECDSAP521 {
			b[0] &= 0x01 // 521 bits in 66 bytes
		}
		k, err := s.ParseSigningKey(b)
		if err == nil {
			return k, nil
		}
	}
	return nil, fmt.Errorf("%w: random source produced no valid scalar", ErrInvalidKey)
}

// usableBy reports whether k is a well-formed key of s's signature scheme.
func (k *SigningKey) usableBy(s *Suite) error {
	if k == nil || k.k == nil {
		return fmt.Errorf("%w: nil signing key", ErrInvalidKey)
	}
	if k.alg != s.sig {
		return fmt.Errorf("%w: signing key is for another signature scheme than suite %s", ErrInvalidKey, s.name)
	}
	return nil
}

// SignWithLabel is the §5.1.2 function
//
//	SignWithLabel(SignatureKey, Label, Content) =
//	    Signature.Sign(SignatureKey, SignContent)
//
// with SignContent {opaque label<V> = "MLS 1.0 " + Label; opaque
// content<V>}. EdDSA signatures are R||S (RFC 8032, pure, empty context);
// ECDSA signatures are DER and use the system CSPRNG.
func (s *Suite) SignWithLabel(k *SigningKey, label string, content []byte) ([]byte, error) {
	if err := k.usableBy(s); err != nil {
		return nil, err
	}
	msg, err := labeled(label, content)
	if err != nil {
		return nil, fmt.Errorf("%w: SignContent too long", err)
	}
	switch s.sig {
	case sigEd25519:
		return ed25519.Sign(*k.k.ed25519, msg), nil
	case sigEd448:
		return ed448.Sign(*k.k.ed448, msg, ""), nil
	default:
		sig, err := ecdsa.SignASN1(rand.Reader, k.k.ecdsa, s.Hash(msg))
		if err != nil {
			return nil, fmt.Errorf("mls: ECDSA signing: %w", err)
		}
		return sig, nil
	}
}

// ValidateSignaturePublicKey checks that pub is a well-formed public key of
// the suite's signature scheme: the right length for EdDSA (the point is
// decoded when verifying), an uncompressed point on the curve for ECDSA.
func (s *Suite) ValidateSignaturePublicKey(pub []byte) error {
	switch s.sig {
	case sigEd25519:
		if len(pub) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: Ed25519 public key is %d bytes, want %d", ErrInvalidKey, len(pub), ed25519.PublicKeySize)
		}
	case sigEd448:
		if len(pub) != ed448.PublicKeySize {
			return fmt.Errorf("%w: Ed448 public key is %d bytes, want %d", ErrInvalidKey, len(pub), ed448.PublicKeySize)
		}
	default:
		if _, err := ecdsa.ParseUncompressedPublicKey(s.ecdsaCrv, pub); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidKey, err)
		}
	}
	return nil
}

// VerifyWithLabel is the §5.1.2 function
//
//	VerifyWithLabel(VerificationKey, Label, Content, SignatureValue) =
//	    Signature.Verify(VerificationKey, SignContent, SignatureValue)
//
// It returns nil if the signature is valid, an error matching
// ErrInvalidSignature if it is not, and one matching ErrInvalidKey if pub
// is malformed.
func (s *Suite) VerifyWithLabel(pub []byte, label string, content, signature []byte) error {
	if s.ecdsaCrv == nil {
		// EdDSA: only the length is checked here, Verify decodes the point.
		// ECDSA keys are parsed once, below.
		if err := s.ValidateSignaturePublicKey(pub); err != nil {
			return err
		}
	}
	msg, err := labeled(label, content)
	if err != nil {
		return fmt.Errorf("%w: %w: SignContent too long", ErrInvalidSignature, err)
	}
	var ok bool
	switch s.sig {
	case sigEd25519:
		ok = ed25519.Verify(pub, msg, signature)
	case sigEd448:
		ok = ed448.Verify(pub, msg, signature, "")
	default:
		pk, err := ecdsa.ParseUncompressedPublicKey(s.ecdsaCrv, pub)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidKey, err)
		}
		ok = ecdsa.VerifyASN1(pk, s.Hash(msg), signature)
	}
	if !ok {
		return ErrInvalidSignature
	}
	return nil
}
