package ciphersuite

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	circlhpke "github.com/cloudflare/circl/hpke"
	"github.com/mlsengine/mlsengine/mls/codec"
)

func allSuites(t testing.TB) []*Suite {
	var out []*Suite
	for _, id := range All() {
		s, err := Lookup(id)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// detReader is a deterministic byte source for key generation.
func detReader(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	return rand.NewChaCha8(s)
}

func TestLookup(t *testing.T) {
	for _, id := range []ID{0, 8, 0x0A0A, 0xF000, 0xffff} {
		s, err := Lookup(id)
		if s != nil || !errors.Is(err, ErrUnsupportedCipherSuite) {
			t.Errorf("Lookup(%#x) = %v, %v; want ErrUnsupportedCipherSuite", uint16(id), s, err)
		}
		if got := id.String(); !strings.HasPrefix(got, "CipherSuite(0x") {
			t.Errorf("ID(%#x).String() = %q", uint16(id), got)
		}
	}
	params := map[ID][3]int{ // Nh, Nk, Nn
		1: {32, 16, 12}, 2: {32, 16, 12}, 3: {32, 32, 12}, 4: {64, 32, 12},
		5: {64, 32, 12}, 6: {64, 32, 12}, 7: {48, 32, 12},
	}
	if len(All()) != 7 {
		t.Fatalf("All() = %v", All())
	}
	for _, s := range allSuites(t) {
		p := params[s.ID()]
		if s.HashLen() != p[0] || s.KeyLen() != p[1] || s.NonceLen() != p[2] {
			t.Errorf("%s: Nh, Nk, Nn = %d, %d, %d; want %v", s, s.HashLen(), s.KeyLen(), s.NonceLen(), p)
		}
		if s.ID().String() != s.String() || !strings.HasPrefix(s.String(), "MLS_") {
			t.Errorf("suite %d name %q", s.ID(), s.String())
		}
		if again, _ := Lookup(s.ID()); again != s {
			t.Errorf("Lookup is not stable")
		}
		if len(s.Hash([]byte("abc"))) != s.HashLen() {
			t.Errorf("%s: Hash length", s)
		}
	}
}

// TestLabeledEncoding checks the hand-rolled label encoding against
// codec.Writer, including lengths that need 2- and 4-byte varints.
func TestLabeledEncoding(t *testing.T) {
	for _, n := range []int{0, 1, 55, 56, 63, 64, 16383, 16384, 20000} {
		label := strings.Repeat("l", n)
		content := bytes.Repeat([]byte{7}, n)
		var w codec.Writer
		w.VarBytes([]byte(labelPrefix + label))
		w.VarBytes(content)
		got, err := labeled(label, content)
		if err != nil || !bytes.Equal(got, w.Bytes()) {
			t.Errorf("n=%d: labeled differs from codec.Writer", n)
		}
		if size, _ := labeledSize(label, content); size != len(got) || cap(got) != len(got) {
			t.Errorf("n=%d: labeledSize %d, len %d, cap %d", n, size, len(got), cap(got))
		}
	}
	// KDFLabel (§8) checked the same way, through the expansion it keys.
	s, _ := Lookup(MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	secret := bytes.Repeat([]byte{1}, 32)
	ctx := bytes.Repeat([]byte{2}, 100)
	var w codec.Writer
	w.Uint16(80)
	w.VarBytes([]byte("MLS 1.0 some label"))
	w.VarBytes(ctx)
	want, _ := s.Expand(secret, w.Bytes(), 80)
	got, err := s.ExpandWithLabel(secret, "some label", ctx, 80)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("ExpandWithLabel differs from Expand(KDFLabel): %x %v", got, err)
	}
	g, err := s.DeriveTreeSecret(secret, "key", 0x01020304, 16)
	want2, _ := s.ExpandWithLabel(secret, "key", []byte{1, 2, 3, 4}, 16)
	if err != nil || !bytes.Equal(g, want2) {
		t.Errorf("DeriveTreeSecret differs")
	}
}

func TestKDFLengths(t *testing.T) {
	for _, s := range allSuites(t) {
		prk := make([]byte, s.HashLen())
		for _, n := range []int{0, 1, s.HashLen(), s.HashLen() + 1, 255 * s.HashLen()} {
			out, err := s.Expand(prk, []byte("info"), n)
			if err != nil || len(out) != n {
				t.Errorf("%s: Expand(%d) = %d bytes, %v", s, n, len(out), err)
			}
		}
		// Multi-block output is the concatenation of the blocks; the first
		// block does not depend on the requested length (HKDF, RFC 5869).
		long, _ := s.Expand(prk, []byte("i"), 3*s.HashLen())
		short, _ := s.Expand(prk, []byte("i"), s.HashLen())
		if !bytes.Equal(long[:s.HashLen()], short) {
			t.Errorf("%s: Expand blocks inconsistent", s)
		}
		for _, n := range []int{-1, 255*s.HashLen() + 1, 1 << 20} {
			if _, err := s.Expand(prk, nil, n); !errors.Is(err, ErrInvalidLength) {
				t.Errorf("%s: Expand(%d) error %v", s, n, err)
			}
			if _, err := s.ExpandWithLabel(prk, "x", nil, n); !errors.Is(err, ErrInvalidLength) {
				t.Errorf("%s: ExpandWithLabel(%d) error %v", s, n, err)
			}
			if _, err := s.DeriveTreeSecret(prk, "x", 1, n); !errors.Is(err, ErrInvalidLength) {
				t.Errorf("%s: DeriveTreeSecret(%d) error %v", s, n, err)
			}
		}
		if _, err := s.ExpandWithLabel(prk, "x", nil, 0x10000); !errors.Is(err, ErrInvalidLength) {
			t.Errorf("%s: ExpandWithLabel(65536) error %v", s, err)
		}
		// Extract with an empty salt equals Extract with Nh zero bytes (RFC 5869).
		if !bytes.Equal(s.Extract(nil, []byte("ikm")), s.Extract(make([]byte, s.HashLen()), []byte("ikm"))) {
			t.Errorf("%s: Extract empty salt differs from zero salt", s)
		}
		mac := s.MAC([]byte("key"), []byte("data"))
		if len(mac) != s.HashLen() || !s.VerifyMAC([]byte("key"), []byte("data"), mac) {
			t.Errorf("%s: MAC round trip", s)
		}
		mac[0] ^= 1
		if s.VerifyMAC([]byte("key"), []byte("data"), mac) || s.VerifyMAC([]byte("key"), []byte("data"), mac[:5]) || s.VerifyMAC([]byte("key"), []byte("data"), nil) {
			t.Errorf("%s: VerifyMAC accepted a bad tag", s)
		}
	}
}

func TestAEAD(t *testing.T) {
	for _, s := range allSuites(t) {
		key := bytes.Repeat([]byte{1}, s.KeyLen())
		nonce := bytes.Repeat([]byte{2}, s.NonceLen())
		ct, err := s.Seal(key, nonce, []byte("aad"), []byte("hello"))
		if err != nil {
			t.Fatal(err)
		}
		pt, err := s.Open(key, nonce, []byte("aad"), ct)
		if err != nil || string(pt) != "hello" {
			t.Errorf("%s: Open = %q, %v", s, pt, err)
		}
		if pt, err := s.Open(key, nonce, nil, mustSeal(t, s, key, nonce, nil)); err != nil || pt == nil || len(pt) != 0 {
			t.Errorf("%s: empty plaintext round trip = %v, %v", s, pt, err)
		}
		bad := bytes.Clone(ct)
		bad[0] ^= 1
		for name, c := range map[string][]byte{"flipped": bad, "truncated": ct[:len(ct)-1], "short": ct[:3], "empty": nil} {
			if _, err := s.Open(key, nonce, []byte("aad"), c); !errors.Is(err, ErrDecryption) {
				t.Errorf("%s: Open(%s) error %v", s, name, err)
			}
		}
		if _, err := s.Open(key, nonce, []byte("other"), ct); !errors.Is(err, ErrDecryption) {
			t.Errorf("%s: Open with wrong aad: %v", s, err)
		}
		for _, k := range [][]byte{nil, key[:len(key)-1], append(bytes.Clone(key), 0)} {
			if _, err := s.Seal(k, nonce, nil, nil); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("%s: Seal with %d-byte key: %v", s, len(k), err)
			}
			if _, err := s.Open(k, nonce, nil, ct); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("%s: Open with %d-byte key: %v", s, len(k), err)
			}
		}
		for _, n := range [][]byte{nil, nonce[:11], make([]byte, 24)} {
			if _, err := s.Seal(key, n, nil, nil); !errors.Is(err, ErrInvalidLength) {
				t.Errorf("%s: Seal with %d-byte nonce: %v", s, len(n), err)
			}
			if _, err := s.Open(key, n, nil, ct); !errors.Is(err, ErrInvalidLength) {
				t.Errorf("%s: Open with %d-byte nonce: %v", s, len(n), err)
			}
		}
	}
}

func mustSeal(t *testing.T, s *Suite, key, nonce, aad []byte) []byte {
	t.Helper()
	ct, err := s.Seal(key, nonce, aad, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

func TestHPKE(t *testing.T) {
	for _, s := range allSuites(t) {
		t.Run(s.String(), func(t *testing.T) {
			k, err := s.GenerateKeyPair(detReader(1))
			if err != nil {
				t.Fatal(err)
			}
			k2, _ := s.GenerateKeyPair(detReader(1))
			if !bytes.Equal(k.PublicKey(), k2.PublicKey()) {
				t.Errorf("GenerateKeyPair is not reproducible from its reader")
			}
			if k3, _ := s.GenerateKeyPair(nil); bytes.Equal(k3.PublicKey(), k.PublicKey()) {
				t.Errorf("GenerateKeyPair(nil) repeated a key")
			}
			// Parse(Bytes()) is the same key, and Bytes is a fixed point.
			kb := k.Bytes()
			if kb.Len() != s.nsk {
				t.Errorf("Bytes is %d bytes, want %d", kb.Len(), s.nsk)
			}
			p, err := s.ParseHPKEPrivateKey(kb.Bytes())
			if err != nil || !bytes.Equal(p.PublicKey(), k.PublicKey()) || !p.Bytes().Equal(kb) {
				t.Fatalf("ParseHPKEPrivateKey(Bytes()) round trip: %v", err)
			}
			pub := k.PublicKey()
			if err := s.ValidateHPKEPublicKey(pub); err != nil {
				t.Error(err)
			}
			pub[0] ^= 0xff // PublicKey returns a copy
			if bytes.Equal(pub, k.PublicKey()) {
				t.Errorf("PublicKey aliases the key")
			}
			pub = k.PublicKey()

			enc, ct, err := s.HPKESeal(pub, []byte("info"), []byte("aad"), []byte("secret message"))
			if err != nil {
				t.Fatal(err)
			}
			pt, err := s.HPKEOpen(k, enc, []byte("info"), []byte("aad"), ct)
			if err != nil || string(pt) != "secret message" {
				t.Fatalf("HPKEOpen = %q, %v", pt, err)
			}
			enc2, _, _ := s.HPKESeal(pub, nil, nil, nil)
			if bytes.Equal(enc, enc2) {
				t.Errorf("HPKESeal reused an ephemeral key")
			}

			// Tampering of every input.
			flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 1; return b }
			for name, f := range map[string]func() ([]byte, error){
				"ciphertext": func() ([]byte, error) { return s.HPKEOpen(k, enc, []byte("info"), []byte("aad"), flip(ct, len(ct)-1)) },
				"kem_output": func() ([]byte, error) { return s.HPKEOpen(k, flip(enc, len(enc)-1), []byte("info"), []byte("aad"), ct) },
				"short kem":  func() ([]byte, error) { return s.HPKEOpen(k, enc[:len(enc)-1], []byte("info"), []byte("aad"), ct) },
				"empty kem":  func() ([]byte, error) { return s.HPKEOpen(k, nil, []byte("info"), []byte("aad"), ct) },
				"info":       func() ([]byte, error) { return s.HPKEOpen(k, enc, []byte("inf0"), []byte("aad"), ct) },
				"aad":        func() ([]byte, error) { return s.HPKEOpen(k, enc, []byte("info"), nil, ct) },
				"short ct":   func() ([]byte, error) { return s.HPKEOpen(k, enc, []byte("info"), []byte("aad"), ct[:10]) },
				"empty ct":   func() ([]byte, error) { return s.HPKEOpen(k, enc, []byte("info"), []byte("aad"), nil) },
				"other key": func() ([]byte, error) {
					o, _ := s.GenerateKeyPair(detReader(2))
					return s.HPKEOpen(o, enc, []byte("info"), []byte("aad"), ct)
				},
				"wrong label":  func() ([]byte, error) { return s.DecryptWithLabel(k, "x", nil, enc, ct) },
				"export short": func() ([]byte, error) { return s.HPKEExportReceiver(k, enc[:5], nil, "c", 32) },
			} {
				if _, err := f(); !errors.Is(err, ErrDecryption) {
					t.Errorf("tampered %s: error %v, want ErrDecryption", name, err)
				}
			}

			// Keys that are not usable by this suite.
			var other *Suite
			for _, o := range allSuites(t) {
				if o.kemID != s.kemID {
					other = o
					break
				}
			}
			ko, _ := other.GenerateKeyPair(detReader(3))
			for name, key := range map[string]*HPKEPrivateKey{"nil": nil, "zero": {}, "other KEM": ko} {
				if _, err := s.HPKEOpen(key, enc, nil, nil, ct); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("HPKEOpen with %s key: %v", name, err)
				}
				if _, err := s.HPKEExportReceiver(key, enc, nil, "", 32); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("HPKEExportReceiver with %s key: %v", name, err)
				}
				if _, err := s.DecryptWithLabel(key, "l", nil, enc, ct); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("DecryptWithLabel with %s key: %v", name, err)
				}
			}
			var nilKey *HPKEPrivateKey
			if nilKey.PublicKey() != nil || !nilKey.Bytes().IsZero() || !(&HPKEPrivateKey{}).Bytes().IsZero() {
				t.Errorf("nil key accessors")
			}

			// Exporter: both sides agree; lengths are bounded.
			enc, x, err := s.HPKEExportSender(pub, []byte("info"), "MLS 1.0 external init secret", s.HashLen())
			if err != nil || len(x) != s.HashLen() {
				t.Fatalf("HPKEExportSender: %d bytes, %v", len(x), err)
			}
			y, err := s.HPKEExportReceiver(k, enc, []byte("info"), "MLS 1.0 external init secret", s.HashLen())
			if err != nil || !bytes.Equal(x, y) {
				t.Errorf("exports differ: %v", err)
			}
			for _, n := range []int{-1, 255*s.HashLen() + 1, 0x10000} {
				if _, _, err := s.HPKEExportSender(pub, nil, "", n); !errors.Is(err, ErrInvalidLength) {
					t.Errorf("HPKEExportSender(%d): %v", n, err)
				}
				if _, err := s.HPKEExportReceiver(k, enc, nil, "", n); !errors.Is(err, ErrInvalidLength) {
					t.Errorf("HPKEExportReceiver(%d): %v", n, err)
				}
			}

			// Labeled encryption.
			enc, ct, err = s.EncryptWithLabel(pub, "UpdatePathNode", []byte("ctx"), []byte("path secret"))
			if err != nil {
				t.Fatal(err)
			}
			if pt, err := s.DecryptWithLabel(k, "UpdatePathNode", []byte("ctx"), enc, ct); err != nil || string(pt) != "path secret" {
				t.Errorf("DecryptWithLabel = %q, %v", pt, err)
			}
			if _, err := s.DecryptWithLabel(k, "UpdatePathNode", []byte("ctX"), enc, ct); !errors.Is(err, ErrDecryption) {
				t.Errorf("DecryptWithLabel with wrong context: %v", err)
			}
		})
	}
}

// badHPKEPublicKeys returns malformed public keys for s's KEM.
func badHPKEPublicKeys(s *Suite, good []byte) map[string][]byte {
	bad := map[string][]byte{
		"empty":      nil,
		"short":      good[:len(good)-1],
		"long":       append(bytes.Clone(good), 0),
		"compressed": append([]byte{0x02}, good[1:(len(good)+1)/2]...),
	}
	if s.kemID != kemX25519 && s.kemID != kemX448 {
		offCurve := bytes.Clone(good)
		offCurve[len(offCurve)-1] ^= 1
		bad["off curve"] = offCurve
		bad["identity"] = []byte{0}
		bad["zero point"] = append([]byte{4}, make([]byte, len(good)-1)...)
		bad["wrong prefix"] = append([]byte{5}, good[1:]...)
	}
	return bad
}

func TestHPKEBadKeys(t *testing.T) {
	for _, s := range allSuites(t) {
		k, _ := s.GenerateKeyPair(detReader(4))
		for name, pub := range badHPKEPublicKeys(s, k.PublicKey()) {
			if err := s.ValidateHPKEPublicKey(pub); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("%s: ValidateHPKEPublicKey(%s): %v", s, name, err)
			}
			if _, _, err := s.HPKESeal(pub, nil, nil, nil); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("%s: HPKESeal(%s): %v", s, name, err)
			}
			if _, _, err := s.EncryptWithLabel(pub, "l", nil, nil); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("%s: EncryptWithLabel(%s): %v", s, name, err)
			}
			if _, _, err := s.HPKEExportSender(pub, nil, "", 32); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("%s: HPKEExportSender(%s): %v", s, name, err)
			}
		}
		// A low-order X25519/X448 point passes validation (RFC 9180 §7.1.4
		// does not require rejecting it) but encryption to it must fail on
		// the all-zero shared secret, and so must decapsulating it.
		if s.kemID == kemX25519 || s.kemID == kemX448 {
			zero := make([]byte, len(k.PublicKey()))
			if _, _, err := s.HPKESeal(zero, nil, nil, nil); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("%s: HPKESeal to a low-order point: %v", s, err)
			}
			if _, err := s.HPKEOpen(k, zero, nil, nil, make([]byte, 16)); !errors.Is(err, ErrDecryption) {
				t.Errorf("%s: HPKEOpen of a low-order kem_output: %v", s, err)
			}
		}
		badPriv := map[string][]byte{"empty": nil, "short": make([]byte, s.nsk-1), "long": make([]byte, s.nsk+1)}
		if s.kemID != kemX25519 && s.kemID != kemX448 {
			badPriv["zero"] = make([]byte, s.nsk)
			badPriv["order or more"] = bytes.Repeat([]byte{0xff}, s.nsk)
		}
		for name, b := range badPriv {
			if _, err := s.ParseHPKEPrivateKey(b); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("%s: ParseHPKEPrivateKey(%s): %v", s, name, err)
			}
		}
	}
}

func TestSignatures(t *testing.T) {
	for _, s := range allSuites(t) {
		t.Run(s.String(), func(t *testing.T) {
			k, err := s.GenerateSigningKey(detReader(5))
			if err != nil {
				t.Fatal(err)
			}
			k2, _ := s.GenerateSigningKey(detReader(5))
			if !bytes.Equal(k.PublicKey(), k2.PublicKey()) {
				t.Errorf("GenerateSigningKey is not reproducible from its reader")
			}
			if k3, _ := s.GenerateSigningKey(nil); bytes.Equal(k3.PublicKey(), k.PublicKey()) {
				t.Errorf("GenerateSigningKey(nil) repeated a key")
			}
			p, err := s.ParseSigningKey(k.Bytes().Bytes())
			if err != nil || !bytes.Equal(p.PublicKey(), k.PublicKey()) || !p.Bytes().Equal(k.Bytes()) {
				t.Fatalf("ParseSigningKey(Bytes()) round trip: %v", err)
			}
			if k.Bytes().Len() != s.sigPrivLen() {
				t.Errorf("Bytes is %d bytes", k.Bytes().Len())
			}
			pub := k.PublicKey()
			if err := s.ValidateSignaturePublicKey(pub); err != nil {
				t.Error(err)
			}
			sig, err := s.SignWithLabel(k, "LeafNodeTBS", []byte("content"))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.VerifyWithLabel(pub, "LeafNodeTBS", []byte("content"), sig); err != nil {
				t.Fatal(err)
			}
			flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 1; return b }
			for name, f := range map[string]func() error{
				"label":         func() error { return s.VerifyWithLabel(pub, "LeafNodeTBs", []byte("content"), sig) },
				"content":       func() error { return s.VerifyWithLabel(pub, "LeafNodeTBS", []byte("Content"), sig) },
				"sig first":     func() error { return s.VerifyWithLabel(pub, "LeafNodeTBS", []byte("content"), flip(sig, 0)) },
				"sig last":      func() error { return s.VerifyWithLabel(pub, "LeafNodeTBS", []byte("content"), flip(sig, len(sig)-1)) },
				"sig truncated": func() error { return s.VerifyWithLabel(pub, "LeafNodeTBS", []byte("content"), sig[:len(sig)-1]) },
				"sig extended": func() error {
					return s.VerifyWithLabel(pub, "LeafNodeTBS", []byte("content"), append(bytes.Clone(sig), 0))
				},
				"sig empty": func() error { return s.VerifyWithLabel(pub, "LeafNodeTBS", []byte("content"), nil) },
				"other key": func() error {
					o, _ := s.GenerateSigningKey(detReader(6))
					return s.VerifyWithLabel(o.PublicKey(), "LeafNodeTBS", []byte("content"), sig)
				},
			} {
				if err := f(); !errors.Is(err, ErrInvalidSignature) {
					t.Errorf("tampered %s: %v, want ErrInvalidSignature", name, err)
				}
			}
			badPub := map[string][]byte{"empty": nil, "short": pub[:len(pub)-1], "long": append(bytes.Clone(pub), 0)}
			if s.ecdsaCrv != nil {
				badPub["off curve"] = flip(pub, len(pub)-1)
				badPub["compressed"] = append([]byte{2}, pub[1:(len(pub)+1)/2]...)
				badPub["identity"] = []byte{0}
			}
			for name, b := range badPub {
				if err := s.ValidateSignaturePublicKey(b); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("ValidateSignaturePublicKey(%s): %v", name, err)
				}
				if err := s.VerifyWithLabel(b, "LeafNodeTBS", []byte("content"), sig); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("VerifyWithLabel with %s key: %v", name, err)
				}
			}
			badPriv := map[string][]byte{"empty": nil, "short": make([]byte, s.sigPrivLen()-1), "long": make([]byte, s.sigPrivLen()+1)}
			if s.ecdsaCrv != nil {
				badPriv["zero"] = make([]byte, s.sigPrivLen())
				badPriv["order or more"] = bytes.Repeat([]byte{0xff}, s.sigPrivLen())
			}
			for name, b := range badPriv {
				if _, err := s.ParseSigningKey(b); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("ParseSigningKey(%s): %v", name, err)
				}
			}
			var other *Suite
			for _, o := range allSuites(t) {
				if o.sig != s.sig {
					other = o
					break
				}
			}
			ko, _ := other.GenerateSigningKey(detReader(7))
			for name, key := range map[string]*SigningKey{"nil": nil, "zero": {}, "other scheme": ko} {
				if _, err := s.SignWithLabel(key, "l", nil); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("SignWithLabel with %s key: %v", name, err)
				}
			}
			var nilKey *SigningKey
			if nilKey.PublicKey() != nil || !nilKey.Bytes().IsZero() || !(&SigningKey{}).Bytes().IsZero() {
				t.Errorf("nil key accessors")
			}
			if _, err := s.GenerateSigningKey(bytes.NewReader(nil)); err == nil {
				t.Errorf("GenerateSigningKey with an empty reader succeeded")
			}
			if _, err := s.GenerateKeyPair(bytes.NewReader(make([]byte, 3))); err == nil {
				t.Errorf("GenerateKeyPair with a short reader succeeded")
			}
		})
	}
}

// TestECDSAGenerateRejection checks that an all-0xff reader, whose strings
// are never valid scalars, ends in an error rather than a loop or panic,
// and that P-521 strings are masked to 521 bits.
func TestECDSAGenerateRejection(t *testing.T) {
	for _, id := range []ID{MLS_128_DHKEMP256_AES128GCM_SHA256_P256, MLS_256_DHKEMP384_AES256GCM_SHA384_P384} {
		s, _ := Lookup(id)
		if _, err := s.GenerateSigningKey(bytes.NewReader(bytes.Repeat([]byte{0xff}, 64*66))); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("%s: %v", s, err)
		}
	}
	s, _ := Lookup(MLS_256_DHKEMP521_AES256GCM_SHA512_P521)
	k, err := s.GenerateSigningKey(bytes.NewReader(bytes.Repeat([]byte{0x80}, 66)))
	if err != nil || k.Bytes().Bytes()[0] != 0 {
		t.Errorf("P-521 scalar not masked: %v", err)
	}
}

// TestX448AgainstCircl cross-checks the X448 HPKE implemented here with
// circl's HPKE, in both directions, and DeriveKeyPair for the one input
// length circl accepts.
func TestX448AgainstCircl(t *testing.T) {
	for _, c := range []struct {
		id   ID
		aead circlhpke.AEAD
	}{
		{MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448, circlhpke.AEAD_AES256GCM},
		{MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448, circlhpke.AEAD_ChaCha20Poly1305},
	} {
		s, _ := Lookup(c.id)
		cs := circlhpke.NewSuite(circlhpke.KEM_X448_HKDF_SHA512, circlhpke.KDF_HKDF_SHA512, c.aead)
		scheme := circlhpke.KEM_X448_HKDF_SHA512.Scheme()
		seed := bytes.Repeat([]byte{9}, scheme.SeedSize())
		cpk, csk := scheme.DeriveKeyPair(seed)
		ours, _ := s.DeriveKeyPair(seed)
		cpkb, _ := cpk.MarshalBinary()
		if !bytes.Equal(cpkb, ours.PublicKey()) {
			t.Fatalf("%s: DeriveKeyPair public key differs from circl", s)
		}
		cskb, _ := csk.MarshalBinary()
		if !ours.Bytes().EqualBytes(clampX(kemX448, cskb)) {
			t.Errorf("%s: DeriveKeyPair private key differs from circl", s)
		}

		snd, err := cs.NewSender(cpk, []byte("info"))
		if err != nil {
			t.Fatal(err)
		}
		enc, sealer, err := snd.Setup(nil)
		if err != nil {
			t.Fatal(err)
		}
		ct, _ := sealer.Seal([]byte("from circl"), []byte("aad"))
		pt, err := s.HPKEOpen(ours, enc, []byte("info"), []byte("aad"), ct)
		if err != nil || string(pt) != "from circl" {
			t.Errorf("%s: opening circl's ciphertext: %q, %v", s, pt, err)
		}
		cx := sealer.Export([]byte("ctx"), 48)
		ox, err := s.HPKEExportReceiver(ours, enc, []byte("info"), "ctx", 48)
		if err != nil || !bytes.Equal(cx, ox) {
			t.Errorf("%s: export differs from circl: %v", s, err)
		}

		enc, ct, err = s.HPKESeal(ours.PublicKey(), []byte("info"), []byte("aad"), []byte("from us"))
		if err != nil {
			t.Fatal(err)
		}
		rcv, _ := cs.NewReceiver(csk, []byte("info"))
		opener, err := rcv.Setup(enc)
		if err != nil {
			t.Fatal(err)
		}
		pt, err = opener.Open(ct, []byte("aad"))
		if err != nil || string(pt) != "from us" {
			t.Errorf("%s: circl opening our ciphertext: %q, %v", s, pt, err)
		}
	}
}

// TestNoPanics feeds every function random inputs of random lengths,
// including lengths one off the valid ones. Any panic fails the test.
func TestNoPanics(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	lens := func(s *Suite) []int {
		return []int{0, 1, 31, 32, 33, 48, 56, 57, 64, 65, 66, 97, 133, s.nsk, s.nsk + 1, s.nh, s.nk, s.nn}
	}
	rnd := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if n > 0 && r.IntN(4) == 0 {
			b[0] = 4 // looks like an uncompressed point
		}
		return b
	}
	for _, s := range allSuites(t) {
		good, _ := s.GenerateKeyPair(detReader(8))
		sk, _ := s.GenerateSigningKey(detReader(9))
		for range 300 {
			ls := lens(s)
			a := rnd(ls[r.IntN(len(ls))])
			b := rnd(ls[r.IntN(len(ls))])
			c := rnd(ls[r.IntN(len(ls))])
			n := r.IntN(300) - 20
			_ = s.Hash(a)
			_ = s.Extract(a, b)
			_, _ = s.Expand(a, b, n)
			_ = s.MAC(a, b)
			_ = s.VerifyMAC(a, b, c)
			_, _ = s.ExpandWithLabel(a, string(b), c, n)
			_ = s.DeriveSecret(a, string(b))
			_, _ = s.DeriveTreeSecret(a, string(b), r.Uint32(), n)
			_ = s.RefHash(string(a), b)
			_, _ = s.Seal(a, b, c, a)
			_, _ = s.Open(a, b, c, a)
			_, _ = s.NewAEAD(a)
			if k, err := s.DeriveKeyPair(a); err == nil {
				_, _ = s.HPKEOpen(k, b, c, a, b)
			}
			_, _ = s.ParseHPKEPrivateKey(a)
			_ = s.ValidateHPKEPublicKey(a)
			_, _, _ = s.HPKESeal(a, b, c, a)
			_, _ = s.HPKEOpen(good, a, b, c, a)
			_, _, _ = s.HPKEExportSender(a, b, string(c), n)
			_, _ = s.HPKEExportReceiver(good, a, b, string(c), n)
			_, _, _ = s.EncryptWithLabel(a, string(b), c, a)
			_, _ = s.DecryptWithLabel(good, string(a), b, c, a)
			_, _ = s.ParseSigningKey(a)
			_ = s.ValidateSignaturePublicKey(a)
			_ = s.VerifyWithLabel(a, string(b), c, a)
			_ = s.VerifyWithLabel(sk.PublicKey(), string(b), c, a)
			_, _ = s.SignWithLabel(sk, string(a), b)
		}
	}
}

// TestRedaction checks that the private keys never print their bytes.
func TestRedaction(t *testing.T) {
	for _, s := range allSuites(t) {
		hk, _ := s.GenerateKeyPair(detReader(10))
		sk, _ := s.GenerateSigningKey(detReader(11))
		type exported struct {
			H *HPKEPrivateKey
			S *SigningKey
		}
		type byValue struct {
			H HPKEPrivateKey
			S SigningKey
		}
		type unexported struct {
			h HPKEPrivateKey
			s SigningKey
		}
		values := []any{hk, *hk, sk, *sk, exported{hk, sk}, byValue{*hk, *sk}, unexported{*hk, *sk}, []*HPKEPrivateKey{hk}, map[string]SigningKey{"k": *sk}}
		secrets := [][]byte{hk.Bytes().Bytes(), sk.Bytes().Bytes()}
		var outputs []string
		for _, v := range values {
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d", "%T %v"} {
				outputs = append(outputs, fmt.Sprintf(verb, v))
			}
			outputs = append(outputs, fmt.Sprint(v), fmt.Sprintln(v))
		}
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("keys", "hpke", hk, "sig", sk, "hv", *hk, "sv", *sk, "group", slog.GroupValue(slog.Any("k", hk)))
		slog.New(slog.NewTextHandler(&buf, nil)).Info("keys", "hpke", hk, "sig", sk, "hv", *hk, "sv", *sk)
		outputs = append(outputs, buf.String())
		if !strings.Contains(buf.String(), "[secret]") {
			t.Errorf("%s: slog output not redacted: %s", s, buf.String())
		}
		for _, out := range outputs {
			for _, sec := range secrets {
				if len(sec) == 0 {
					continue
				}
				for _, needle := range []string{
					hex.EncodeToString(sec[:8]),
					strings.ToUpper(hex.EncodeToString(sec[:8])),
					strings.Trim(fmt.Sprint(sec[:6]), "[]"),
					string(sec[:8]),
				} {
					if strings.Contains(out, needle) {
						t.Fatalf("%s: output %q contains key bytes", s, out)
					}
				}
			}
		}
	}
}

// TestConcurrentUse exercises one Suite and one key from many goroutines;
// run with -race.
func TestConcurrentUse(t *testing.T) {
	for _, s := range allSuites(t) {
		hk, _ := s.GenerateKeyPair(detReader(12))
		sk, _ := s.GenerateSigningKey(detReader(13))
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				msg := []byte{byte(i)}
				enc, ct, err := s.EncryptWithLabel(hk.PublicKey(), "l", nil, msg)
				if err == nil {
					_, err = s.DecryptWithLabel(hk, "l", nil, enc, ct)
				}
				if err == nil {
					var sig []byte
					sig, err = s.SignWithLabel(sk, "l", msg)
					if err == nil {
						err = s.VerifyWithLabel(sk.PublicKey(), "l", msg, sig)
					}
				}
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
}

// The standard library's X25519 key must round-trip through ecdh as well;
// this guards the assumption that crypto/hpke keys are plain ecdh keys.
func TestStdlibKeyShape(t *testing.T) {
	s, _ := Lookup(MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	k, _ := s.GenerateKeyPair(detReader(14))
	e, err := ecdh.X25519().NewPrivateKey(k.Bytes().Bytes())
	if err != nil || !bytes.Equal(e.PublicKey().Bytes(), k.PublicKey()) {
		t.Errorf("X25519 key bytes do not describe the same key: %v", err)
	}
}

func FuzzHPKEOpen(f *testing.F) {
	for _, id := range All() {
		s, _ := Lookup(id)
		k, _ := s.GenerateKeyPair(detReader(15))
		enc, ct, _ := s.HPKESeal(k.PublicKey(), []byte("i"), nil, []byte("p"))
		f.Add(uint16(id), enc, ct)
	}
	f.Fuzz(func(t *testing.T, id uint16, enc, ct []byte) {
		s, err := Lookup(ID(id))
		if err != nil {
			return
		}
		k, _ := s.GenerateKeyPair(detReader(15))
		pt, err := s.HPKEOpen(k, enc, []byte("i"), nil, ct)
		if err == nil && string(pt) != "p" {
			t.Errorf("opened to %q", pt)
		}
	})
}

func FuzzVerifyWithLabel(f *testing.F) {
	for _, id := range All() {
		s, _ := Lookup(id)
		k, _ := s.GenerateSigningKey(detReader(16))
		sig, _ := s.SignWithLabel(k, "l", []byte("c"))
		f.Add(uint16(id), k.PublicKey(), sig)
	}
	f.Fuzz(func(t *testing.T, id uint16, pub, sig []byte) {
		s, err := Lookup(ID(id))
		if err != nil {
			return
		}
		_ = s.VerifyWithLabel(pub, "l", []byte("c"), sig)
		_ = s.ValidateSignaturePublicKey(pub)
		_ = s.ValidateHPKEPublicKey(pub)
		_, _ = s.ParseHPKEPrivateKey(sig)
		_, _ = s.ParseSigningKey(sig)
	})
}

// TestHMACMatchesStdlib compares the stack-buffer HMAC with crypto/hmac
// across the boundaries of its fast path: keys up to and past the block
// size, messages up to and past the buffer.
func TestHMACMatchesStdlib(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, s := range allSuites(t) {
		bs := s.blockSize()
		keyLens := []int{0, 1, s.HashLen(), bs - 1, bs, bs + 1, 3 * bs}
		msgLens := []int{0, 1, 55, 56, 64, hmacStackBuf - bs - 1, hmacStackBuf - bs, hmacStackBuf - bs + 1, 1000}
		for _, kl := range keyLens {
			for _, ml := range msgLens {
				key, msg := make([]byte, kl), make([]byte, ml)
				for i := range key {
					key[i] = byte(r.Uint32())
				}
				for i := range msg {
					msg[i] = byte(r.Uint32())
				}
				m := hmac.New(s.newHash, key)
				m.Write(msg)
				want := m.Sum(nil)
				if got := s.hmacSum([]byte("prefix"), key, msg); !bytes.Equal(got, append([]byte("prefix"), want...)) {
					t.Errorf("%s: key %d msg %d: hmacSum differs from crypto/hmac", s, kl, ml)
				}
				if got := s.MAC(key, msg); !bytes.Equal(got, want) {
					t.Errorf("%s: key %d msg %d: MAC differs", s, kl, ml)
				}
			}
		}
		// HKDF-Expand one block and many blocks against crypto/hkdf.
		prk := make([]byte, s.HashLen())
		for _, n := range []int{1, s.HashLen() - 1, s.HashLen(), s.HashLen() + 1, 5 * s.HashLen()} {
			for _, il := range []int{0, 10, 400} {
				info := bytes.Repeat([]byte{byte(il)}, il)
				want, _ := hkdf.Expand(s.newHash, prk, string(info), n)
				if got, _ := s.Expand(prk, info, n); !bytes.Equal(got, want) {
					t.Errorf("%s: Expand(%d, info %d) differs from crypto/hkdf", s, n, il)
				}
			}
		}
		for _, sl := range []int{0, s.HashLen(), 2 * bs} {
			salt := bytes.Repeat([]byte{5}, sl)
			want, _ := hkdf.Extract(s.newHash, []byte("ikm"), salt)
			if got := s.Extract(salt, []byte("ikm")); !bytes.Equal(got, want) {
				t.Errorf("%s: Extract(salt %d) differs from crypto/hkdf", s, sl)
			}
		}
	}
}

// TestParseSigningKeyShortECDSAScalar: an ECDSA scalar written without its
// leading zero bytes (as in the official P-521 vectors) parses to the same
// key as the full-width encoding; EdDSA seeds must have their exact size.
func TestParseSigningKeyShortECDSAScalar(t *testing.T) {
	for _, id := range All() {
		s, _ := Lookup(id)
		k, err := s.GenerateSigningKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		full := append([]byte(nil), k.Bytes().Bytes()...)
		full[0] = 0 // any key with a leading zero byte
		short := full[1:]
		want, err := s.ParseSigningKey(full)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.ParseSigningKey(short)
		switch s.sig {
		case sigEd25519, sigEd448:
			if err == nil {
				t.Errorf("%v: short EdDSA seed accepted", id)
			}
		default:
			if err != nil || string(got.PublicKey()) != string(want.PublicKey()) {
				t.Errorf("%v: short scalar: %v", id, err)
			}
		}
	}
}
