package ciphersuite

import (
	"crypto/ecdh"
	"crypto/elliptic"
	"crypto/hpke"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
)

// ID is a cipher suite number as carried on the wire (RFC 9420 §17.1).
type ID uint16

// The cipher suites of RFC 9420 §17.1.
const (
	MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519        ID = 0x0001
	MLS_128_DHKEMP256_AES128GCM_SHA256_P256             ID = 0x0002
	MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519 ID = 0x0003
	MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448            ID = 0x0004
	MLS_256_DHKEMP521_AES256GCM_SHA512_P521             ID = 0x0005
	MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448     ID = 0x0006
	MLS_256_DHKEMP384_AES256GCM_SHA384_P384             ID = 0x0007
)

// Errors returned by this package. Each can be matched with errors.Is; the
// returned errors wrap them with detail.
var (
	// ErrUnsupportedCipherSuite: the suite number is not one of the seven
	// suites of §17.1.
	ErrUnsupportedCipherSuite = errors.New("mls: unsupported cipher suite")
	// ErrInvalidKey: a key has the wrong length, is not a valid point or
	// scalar, belongs to another algorithm, or is nil.
	ErrInvalidKey = errors.New("mls: invalid key")
	// ErrInvalidSignature: a signature does not verify.
	ErrInvalidSignature = errors.New("mls: invalid signature")
	// ErrDecryption: an AEAD or HPKE ciphertext does not decrypt.
	ErrDecryption = errors.New("mls: decryption failed")
	// ErrInvalidLength: a requested output length, nonce length or encoded
	// size is out of range.
	ErrInvalidLength = errors.New("mls: invalid length")
)

// String returns the suite's RFC 9420 name, or a hex number for unknown ids.
func (id ID) String() string {
	if s, err := Lookup(id); err == nil {
		return s.name
	}
	return fmt.Sprintf("CipherSuite(0x%04x)", uint16(id))
}

type hashAlg uint8

const (
	sha256Alg hashAlg = iota + 1
	sha384Alg
	sha512Alg
)

type aeadAlg uint8

const (
	aesGCM aeadAlg = iota + 1
	chaCha20Poly1305
)

type sigAlg uint8

const (
	sigEd25519 sigAlg = iota + 1
	sigEd448
	sigECDSAP256
	sigECDSAP384
	sigECDSAP521
)

// HPKE algorithm identifiers (RFC 9180 §7).
const (
	kemP256   = 0x0010
	kemP384   = 0x0011
	kemP521   = 0x0012
	kemX25519 = 0x0020
	kemX448   = 0x0021

	kdfSHA256 = 0x0001
	kdfSHA384 = 0x0002
	kdfSHA512 = 0x0003

	aeadAES128GCM = 0x0001
	aeadAES256GCM = 0x0002
	aeadChaCha    = 0x0003
)

// Suite is one MLS cipher suite. It is immutable and safe for concurrent
// use; obtain it with Lookup.
type Suite struct {
	id   ID
	name string

	hash    hashAlg
	newHash func() hash.Hash
	nh      int

	aead   aeadAlg
	nk, nn int

	// HPKE (RFC 9180). stdKEM is nil for X448, which this package
	// implements itself (hpke_x448.go).
	kemID, kdfID, aeadID uint16
	nsk                  int // private key size Nsk
	stdKEM               hpke.KEM
	stdKDF               hpke.KDF
	stdAEAD              hpke.AEAD
	hpkeSuiteID          []byte // "HPKE" || kem || kdf || aead (RFC 9180 §5.1)
	kemSuiteID           []byte // "KEM" || kem (RFC 9180 §4.1)
	pskIDHash            []byte // X448: LabeledExtract("", "psk_id_hash", "") in base mode

	sig      sigAlg
	ecdsaCrv elliptic.Curve // ECDSA suites only
}

// suites is the table of supported suites, indexed by ID. It is built once
// at package initialisation and never written afterwards.
var suites = buildSuites()

func buildSuites() [8]*Suite {
	var t [8]*Suite
	t[MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519] = newSuite(MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
		"MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519", sha256Alg, aesGCM, 16, kemX25519, sigEd25519)
	t[MLS_128_DHKEMP256_AES128GCM_SHA256_P256] = newSuite(MLS_128_DHKEMP256_AES128GCM_SHA256_P256,
		"MLS_128_DHKEMP256_AES128GCM_SHA256_P256", sha256Alg, aesGCM, 16, kemP256, sigECDSAP256)
	t[MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519] = newSuite(MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519,
		"MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519", sha256Alg, chaCha20Poly1305, 32, kemX25519, sigEd25519)
	t[MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448] = newSuite(MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448,
		"MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448", sha512Alg, aesGCM, 32, kemX448, sigEd448)
	t[MLS_256_DHKEMP521_AES256GCM_SHA512_P521] = newSuite(MLS_256_DHKEMP521_AES256GCM_SHA512_P521,
		"MLS_256_DHKEMP521_AES256GCM_SHA512_P521", sha512Alg, aesGCM, 32, kemP521, sigECDSAP521)
	t[MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448] = newSuite(MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448,
		"MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448", sha512Alg, chaCha20Poly1305, 32, kemX448, sigEd448)
	t[MLS_256_DHKEMP384_AES256GCM_SHA384_P384] = newSuite(MLS_256_DHKEMP384_AES256GCM_SHA384_P384,
		"MLS_256_DHKEMP384_AES256GCM_SHA384_P384", sha384Alg, aesGCM, 32, kemP384, sigECDSAP384)
	return t
}

// newSuite fills in a Suite from the §17.1 table row. The KDF is always
// HKDF over the suite's hash.
func newSuite(id ID, name string, h hashAlg, a aeadAlg, nk int, kem uint16, sig sigAlg) *Suite {
	s := &Suite{id: id, name: name, hash: h, aead: a, nk: nk, nn: 12, kemID: kem, sig: sig}
	switch h {
	case sha256Alg:
		s.newHash, s.nh, s.kdfID, s.stdKDF = sha256.New, 32, kdfSHA256, hpke.HKDFSHA256()
	case sha384Alg:
		s.newHash, s.nh, s.kdfID, s.stdKDF = sha512.New384, 48, kdfSHA384, hpke.HKDFSHA384()
	case sha512Alg:
		s.newHash, s.nh, s.kdfID, s.stdKDF = sha512.New, 64, kdfSHA512, hpke.HKDFSHA512()
	}
	switch {
	case a == chaCha20Poly1305:
		s.aeadID, s.stdAEAD = aeadChaCha, hpke.ChaCha20Poly1305()
	case nk == 16:
		s.aeadID, s.stdAEAD = aeadAES128GCM, hpke.AES128GCM()
	default:
		s.aeadID, s.stdAEAD = aeadAES256GCM, hpke.AES256GCM()
	}
	switch kem {
	case kemX25519:
		s.stdKEM, s.nsk = hpke.DHKEM(ecdh.X25519()), 32
	case kemP256:
		s.stdKEM, s.nsk = hpke.DHKEM(ecdh.P256()), 32
	case kemP384:
		s.stdKEM, s.nsk = hpke.DHKEM(ecdh.P384()), 48
	case kemP521:
		s.stdKEM, s.nsk = hpke.DHKEM(ecdh.P521()), 66
	case kemX448:
		s.nsk = x448Size
	}
	switch sig {
	case sigECDSAP256:
		s.ecdsaCrv = elliptic.P256()
	case sigECDSAP384:
		s.ecdsaCrv = elliptic.P384()
	case sigECDSAP521:
		s.ecdsaCrv = elliptic.P521()
	}
	s.kemSuiteID = []byte{'K', 'E', 'M', byte(kem >> 8), byte(kem)}
	s.hpkeSuiteID = []byte{'H', 'P', 'K', 'E',
		byte(kem >> 8), byte(kem), byte(s.kdfID >> 8), byte(s.kdfID), byte(s.aeadID >> 8), byte(s.aeadID)}
	if kem == kemX448 {
		s.pskIDHash = s.labeledExtract(s.hpkeSuiteID, nil, "psk_id_hash", nil)
	}
	return s
}

// Lookup returns the suite with the given number, or an error matching
// ErrUnsupportedCipherSuite. It does not allocate on success.
func Lookup(id ID) (*Suite, error) {
	if int(id) < len(suites) && suites[id] != nil {
		return suites[id], nil
	}
	return nil, fmt.Errorf("%w: 0x%04x", ErrUnsupportedCipherSuite, uint16(id))
}

// All returns the numbers of the supported suites in ascending order. The
// slice is freshly allocated.
func All() []ID {
	return []ID{
		MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
		MLS_128_DHKEMP256_AES128GCM_SHA256_P256,
		MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519,
		MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448,
		MLS_256_DHKEMP521_AES256GCM_SHA512_P521,
		MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448,
		MLS_256_DHKEMP384_AES256GCM_SHA384_P384,
	}
}

// ID returns the suite's number.
func (s *Suite) ID() ID { return s.id }

// String returns the suite's RFC 9420 name.
func (s *Suite) String() string { return s.name }

// HashLen is Nh, the output size of the suite's hash and of KDF.Extract.
func (s *Suite) HashLen() int { return s.nh }

// KeyLen is Nk, the AEAD key size.
func (s *Suite) KeyLen() int { return s.nk }

// NonceLen is Nn, the AEAD nonce size.
func (s *Suite) NonceLen() int { return s.nn }
