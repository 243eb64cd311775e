// Package ciphersuite implements the cryptographic primitives of the seven
// MLS cipher suites of RFC 9420 (§5.1, §17.1) behind one type, [Suite].
//
// # Using it
//
// Look a suite up by the number carried on the wire; an unknown number is an
// error (ErrUnsupportedCipherSuite), never a panic:
//
//	s, err := ciphersuite.Lookup(id)
//
// A *Suite is immutable and safe for concurrent use. Its methods cover what
// the rest of MLS needs:
//
//   - hashing and key derivation: Hash, Extract, Expand, MAC, VerifyMAC,
//     ExpandWithLabel and DeriveSecret (§8), DeriveTreeSecret (§9.1),
//     RefHash, MakeKeyPackageRef and MakeProposalRef (§5.2);
//   - symmetric encryption with the suite's AEAD: Seal and Open (or NewAEAD
//     to reuse one key);
//   - HPKE in base mode (RFC 9180): DeriveKeyPair, GenerateKeyPair,
//     HPKESeal, HPKEOpen, the exporter used by external joins (§8.3), and the
//     labeled wrappers EncryptWithLabel and DecryptWithLabel (§5.1.3);
//   - signatures: GenerateSigningKey, ParseSigningKey, SignWithLabel and
//     VerifyWithLabel (§5.1.2).
//
// Private keys are parsed once into [HPKEPrivateKey] and [SigningKey] values
// and reused, so hot paths never re-parse. Both types redact themselves in
// fmt (every verb) and log/slog output; their Bytes methods return a
// [secret.Secret].
//
// # Encodings
//
// Keys use the encodings of the MLS test vectors: HPKE keys are
// SerializePublicKey / SerializePrivateKey of RFC 9180 §7.1 (X25519 and X448
// private keys come back clamped, as §7.1.2 requires); signature public keys
// are RFC 8032 strings for EdDSA and uncompressed points for ECDSA; ECDSA
// private keys are fixed-length big-endian scalars and EdDSA private keys are
// the RFC 8032 seed (32 bytes for Ed25519, 57 for Ed448). ECDSA signatures
// are DER encoded (§5.1.2); Ed448 is pure Ed448 with an empty context.
//
// # Randomness
//
// GenerateKeyPair and GenerateSigningKey read their seed from the reader they
// are given (crypto/rand.Reader when it is nil), so tests can reproduce keys.
// HPKE encapsulation (HPKESeal, EncryptWithLabel, HPKEExportSender) and
// ECDSA signing draw from the system CSPRNG, as the Go 1.26 standard library
// does; use testing/cryptotest.SetGlobalRandom to make them deterministic in
// tests.
//
// # Implementation
//
// Hashes, AES-GCM, X25519/P-256/P-384/P-521 HPKE, Ed25519 and ECDSA come
// from the standard library (crypto/hpke for DHKEM). HMAC (RFC 2104), and so
// HKDF, is computed with the standard library's one-shot SHA-2 functions for
// the short keys and messages of key derivation, which avoids crypto/hmac's
// per-call setup, and with crypto/hmac otherwise; tests compare the two.
// ChaCha20-Poly1305 comes from golang.org/x/crypto. X448 and Ed448 come from
// github.com/cloudflare/circl; DHKEM(X448, HKDF-SHA512) and its HPKE key
// schedule are implemented here over circl's X448 function, including
// RFC 9180 §7.1.3 DeriveKeyPair for input keying material of any length.
//
// Not supported: HPKE modes other than base, GREASE and private-use suite
// numbers, and GODEBUG=fips140=only (RFC 9420 needs primitives that mode
// refuses). Clearing key material is best effort, as in package secret.
package ciphersuite
