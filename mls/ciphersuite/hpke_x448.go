package ciphersuite

// DHKEM(X448, HKDF-SHA512) and the base-mode HPKE key schedule, for suites
// 0x0004 and 0x0006 (RFC 9420 §17.1). The standard library's crypto/hpke has
// no X448, and circl's DeriveKeyPair only accepts exactly Nsk bytes of input
// while MLS passes Nh-byte secrets, so this follows RFC 9180 directly over
// circl's X448 function. Both X448 suites use HKDF-SHA512 for the KEM and
// the HPKE KDF, which is the suite's own KDF, so s.Extract/s.expand serve.

import (
	"crypto/cipher"
	"crypto/subtle"
	"fmt"

	"github.com/cloudflare/circl/dh/x448"
)

const (
	x448Size       = x448.Size // Npk = Nsk = Nenc = Ndh (RFC 9180 §7.1)
	x448SecretSize = 64        // Nsecret of DHKEM(X448, HKDF-SHA512)
	hpkeVersion    = "HPKE-v1"
)

// labeledExtract is RFC 9180 §4:
//
//	LabeledExtract(salt, label, ikm) =
//	    Extract(salt, "HPKE-v1" || suite_id || label || ikm)
func (s *Suite) labeledExtract(suiteID, salt []byte, label string, ikm []byte) []byte {
	b := make([]byte, 0, len(hpkeVersion)+len(suiteID)+len(label)+len(ikm))
	b = append(b, hpkeVersion...)
	b = append(b, suiteID...)
	b = append(b, label...)
	b = append(b, ikm...)
	out := s.Extract(salt, b)
	clear(b)
	return out
}

// labeledExpand is RFC 9180 §4:
//
//	LabeledExpand(prk, label, info, L) =
//	    Expand(prk, I2OSP(L, 2) || "HPKE-v1" || suite_id || label || info, L)
//
// Callers keep L within [0, min(65535, 255*Nh)].
func (s *Suite) labeledExpand(suiteID, prk []byte, label string, info []byte, length int) []byte {
	b := make([]byte, 0, 2+len(hpkeVersion)+len(suiteID)+len(label)+len(info)+1)
	b = append(b, byte(length>>8), byte(length))
	b = append(b, hpkeVersion...)
	b = append(b, suiteID...)
	b = append(b, label...)
	b = append(b, info...)
	b = append(b, 0) // HKDF block counter slot
	return s.expand(prk, b, length)
}

// newX448Key wraps a scalar, clamping it (RFC 9180 §7.1.2 requires
// SerializePrivateKey to output, and DeserializePrivateKey to accept, the
// clamped form of RFC 7748 §5).
func newX448Key(sk []byte) *HPKEPrivateKey {
	k := &hpkeKey{x448: new(x448.Key)}
	copy(k.x448[:], sk)
	k.x448[0] &= 252
	k.x448[55] |= 128
	var pub x448.Key
	x448.KeyGen(&pub, k.x448)
	return &HPKEPrivateKey{kemID: kemX448, pub: pub[:], k: k}
}

// x448DeriveKeyPair is RFC 9180 §7.1.3 for X448: any length of ikm.
//
//	dkp_prk = LabeledExtract("", "dkp_prk", ikm)
//	sk = LabeledExpand(dkp_prk, "sk", "", Nsk)
func (s *Suite) x448DeriveKeyPair(ikm []byte) *HPKEPrivateKey {
	prk := s.labeledExtract(s.kemSuiteID, nil, "dkp_prk", ikm)
	sk := s.labeledExpand(s.kemSuiteID, prk, "sk", nil, x448Size)
	k := newX448Key(sk)
	clear(prk)
	clear(sk)
	return k
}

func (s *Suite) x448ParsePrivateKey(b []byte) (*HPKEPrivateKey, error) {
	if len(b) != x448Size {
		return nil, fmt.Errorf("%w: X448 private key is %d bytes, want %d", ErrInvalidKey, len(b), x448Size)
	}
	return newX448Key(b), nil
}

// x448DH computes DH(sk, pk) and rejects the all-zero output that a
// low-order public key yields (RFC 9180 §7.1.4; RFC 7748 §6.2).
func x448DH(sk *x448.Key, pub []byte) (x448.Key, bool) {
	var pk, dh x448.Key
	copy(pk[:], pub)
	ok := x448.Shared(&dh, sk, &pk)
	var zero x448.Key
	return dh, ok && subtle.ConstantTimeCompare(dh[:], zero[:]) == 0
}

// x448ExtractAndExpand is RFC 9180 §4.1 ExtractAndExpand with kem_context
// = enc || pkRm.
func (s *Suite) x448ExtractAndExpand(dh *x448.Key, enc, pkR []byte) []byte {
	prk := s.labeledExtract(s.kemSuiteID, nil, "eae_prk", dh[:])
	kemContext := make([]byte, 0, 2*x448Size)
	kemContext = append(kemContext, enc...)
	kemContext = append(kemContext, pkR...)
	ss := s.labeledExpand(s.kemSuiteID, prk, "shared_secret", kemContext, x448SecretSize)
	clear(prk)
	return ss
}

// x448Encap is RFC 9180 §4.1 Encap. skE is the ephemeral key; nil draws a
// fresh one from the system CSPRNG (a uniformly random clamped scalar is
// exactly what GenerateKeyPair would give). Tests pass a derived skE to
// reproduce the RFC 9180 vectors.
func (s *Suite) x448Encap(pkR []byte, skE *x448.Key) (sharedSecret, enc []byte, err error) {
	if len(pkR) != x448Size {
		return nil, nil, fmt.Errorf("%w: X448 public key is %d bytes, want %d", ErrInvalidKey, len(pkR), x448Size)
	}
	if skE == nil {
		skE = new(x448.Key)
		if err := readRandom(nil, skE[:]); err != nil {
			return nil, nil, err
		}
		defer clear(skE[:])
	}
	dh, ok := x448DH(skE, pkR)
	defer clear(dh[:])
	if !ok {
		return nil, nil, fmt.Errorf("%w: X448 public key has low order", ErrInvalidKey)
	}
	var pkE x448.Key
	x448.KeyGen(&pkE, skE)
	enc = pkE[:]
	return s.x448ExtractAndExpand(&dh, enc, pkR), enc, nil
}

// x448Decap is RFC 9180 §4.1 Decap.
func (s *Suite) x448Decap(enc []byte, priv *HPKEPrivateKey) ([]byte, error) {
	if len(enc) != x448Size {
		return nil, fmt.Errorf("%w: %w: KEM output is %d bytes, want %d", ErrDecryption, ErrInvalidKey, len(enc), x448Size)
	}
	dh, ok := x448DH(priv.k.x448, enc)
	defer clear(dh[:])
	if !ok {
		return nil, fmt.Errorf("%w: %w: KEM output has low order", ErrDecryption, ErrInvalidKey)
	}
	return s.x448ExtractAndExpand(&dh, enc, priv.pub), nil
}

// hpkeContext is an HPKE encryption context (RFC 9180 §5.2) for the X448
// suites. It is used for one message by the public API; the sequence
// number exists so that the RFC 9180 multi-message vectors can be checked.
// It is never persisted (it holds keys and nonces).
type hpkeContext struct {
	s         *Suite
	aead      cipher.AEAD
	baseNonce []byte
	exporter  []byte
	seq       uint64
}

// keySchedule is RFC 9180 §5.1 KeySchedule in mode_base (no PSK):
//
//	key_schedule_context = mode || psk_id_hash || info_hash
//	secret = LabeledExtract(shared_secret, "secret", psk)
//	key = LabeledExpand(secret, "key", key_schedule_context, Nk)
//	base_nonce = LabeledExpand(secret, "base_nonce", key_schedule_context, Nn)
//	exporter_secret = LabeledExpand(secret, "exp", key_schedule_context, Nh)
func (s *Suite) keySchedule(sharedSecret, info []byte) *hpkeContext {
	infoHash := s.labeledExtract(s.hpkeSuiteID, nil, "info_hash", info)
	ksc := make([]byte, 0, 1+2*s.nh)
	ksc = append(ksc, 0x00) // mode_base
	ksc = append(ksc, s.pskIDHash...)
	ksc = append(ksc, infoHash...)
	secret := s.labeledExtract(s.hpkeSuiteID, sharedSecret, "secret", nil)
	key := s.labeledExpand(s.hpkeSuiteID, secret, "key", ksc, s.nk)
	c := &hpkeContext{
		s:         s,
		baseNonce: s.labeledExpand(s.hpkeSuiteID, secret, "base_nonce", ksc, s.nn),
		exporter:  s.labeledExpand(s.hpkeSuiteID, secret, "exp", ksc, s.nh),
	}
	a, err := s.NewAEAD(key)
	if err != nil {
		// key is Nk bytes by construction.
		panic("ciphersuite: internal error: " + err.Error())
	}
	c.aead = a
	clear(key)
	clear(secret)
	clear(sharedSecret)
	return c
}

// x448SetupS is SetupBaseS (RFC 9180 §5.1.1).
func (s *Suite) x448SetupS(pub, info []byte, skE *x448.Key) ([]byte, *hpkeContext, error) {
	ss, enc, err := s.x448Encap(pub, skE)
	if err != nil {
		return nil, nil, err
	}
	return enc, s.keySchedule(ss, info), nil
}

// x448SetupR is SetupBaseR (RFC 9180 §5.1.1).
func (s *Suite) x448SetupR(priv *HPKEPrivateKey, enc, info []byte) (*hpkeContext, error) {
	ss, err := s.x448Decap(enc, priv)
	if err != nil {
		return nil, err
	}
	return s.keySchedule(ss, info), nil
}

// nonce is RFC 9180 §5.2 ComputeNonce: base_nonce XOR I2OSP(seq, Nn). A
// uint64 sequence number cannot reach the 2^96-1 limit.
func (c *hpkeContext) nonce() []byte {
	n := make([]byte, len(c.baseNonce))
	copy(n, c.baseNonce)
	for i, seq := len(n)-1, c.seq; seq != 0; i, seq = i-1, seq>>8 {
		n[i] ^= byte(seq)
	}
	return n
}

// seal is ContextS.Seal (RFC 9180 §5.2).
func (c *hpkeContext) seal(aad, pt []byte) []byte {
	ct := c.aead.Seal(make([]byte, 0, len(pt)+c.aead.Overhead()), c.nonce(), pt, aad)
	c.seq++
	return ct
}

// open is ContextR.Open (RFC 9180 §5.2).
func (c *hpkeContext) open(aad, ct []byte) ([]byte, error) {
	if len(ct) < c.aead.Overhead() {
		return nil, fmt.Errorf("%w: ciphertext shorter than the tag", ErrDecryption)
	}
	pt, err := c.aead.Open(make([]byte, 0, len(ct)-c.aead.Overhead()), c.nonce(), ct, aad)
	if err != nil {
		return nil, ErrDecryption
	}
	c.seq++
	return pt, nil
}

// export is Context.Export (RFC 9180 §5.3); the caller has checked length.
func (c *hpkeContext) export(exporterContext []byte, length int) []byte {
	return c.s.labeledExpand(c.s.hpkeSuiteID, c.exporter, "sec", exporterContext, length)
}
