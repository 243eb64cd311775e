package ciphersuite_test

import (
	"errors"
	"fmt"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
)

func Example() {
	s, err := ciphersuite.Lookup(ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	if err != nil {
		panic(err)
	}

	// A node's HPKE key pair is derived from its path secret (§7.4).
	pathSecret := make([]byte, s.HashLen())
	node, err := s.DeriveKeyPair(s.DeriveSecret(pathSecret, "node"))
	if err != nil {
		panic(err)
	}

	// Encrypt to the node's public key and decrypt with its private key.
	kemOutput, ct, err := s.EncryptWithLabel(node.PublicKey(), "UpdatePathNode", []byte("group context"), []byte("hello"))
	if err != nil {
		panic(err)
	}
	pt, err := s.DecryptWithLabel(node, "UpdatePathNode", []byte("group context"), kemOutput, ct)
	fmt.Println(string(pt), err)

	// Keys never print their bytes.
	fmt.Println(node)
	// Output:
	// hello <nil>
	// ciphersuite.HPKEPrivateKey{[secret]}
}

func ExampleLookup() {
	for _, id := range []ciphersuite.ID{0x0004, 0x0A0A} {
		s, err := ciphersuite.Lookup(id)
		if errors.Is(err, ciphersuite.ErrUnsupportedCipherSuite) {
			fmt.Println(err)
			continue
		}
		fmt.Println(s, s.HashLen(), s.KeyLen(), s.NonceLen())
	}
	// Output:
	// MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448 64 32 12
	// mls: unsupported cipher suite: 0x0a0a
}

func ExampleSuite_SignWithLabel() {
	s, _ := ciphersuite.Lookup(ciphersuite.MLS_128_DHKEMP256_AES128GCM_SHA256_P256)
	key, err := s.GenerateSigningKey(nil)
	if err != nil {
		panic(err)
	}
	sig, err := s.SignWithLabel(key, "LeafNodeTBS", []byte("leaf node"))
	if err != nil {
		panic(err)
	}
	fmt.Println(s.VerifyWithLabel(key.PublicKey(), "LeafNodeTBS", []byte("leaf node"), sig))
	err = s.VerifyWithLabel(key.PublicKey(), "LeafNodeTBS", []byte("other node"), sig)
	fmt.Println(errors.Is(err, ciphersuite.ErrInvalidSignature))
	// Output:
	// <nil>
	// true
}

func ExampleSuite_DeriveTreeSecret() {
	s, _ := ciphersuite.Lookup(ciphersuite.MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519)
	ratchetSecret := make([]byte, s.HashLen())
	// The key and nonce for generation 0 of a sender ratchet (§9.1).
	key, _ := s.DeriveTreeSecret(ratchetSecret, "key", 0, s.KeyLen())
	nonce, _ := s.DeriveTreeSecret(ratchetSecret, "nonce", 0, s.NonceLen())
	ct, _ := s.Seal(key, nonce, []byte("aad"), []byte("application data"))
	pt, err := s.Open(key, nonce, []byte("aad"), ct)
	fmt.Println(len(key), len(nonce), string(pt), err)
	// Output:
	// 32 12 application data <nil>
}
