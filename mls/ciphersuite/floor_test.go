package ciphersuite

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"testing"
)

// The Floor benchmarks time the bare standard-library primitives that suite
// 0x0001 is built on, so that our figures can be read as multiples of what
// the machine can do at all.

func BenchmarkFloorX25519DH(b *testing.B) {
	k, _ := ecdh.X25519().GenerateKey(rand.Reader)
	peer, _ := ecdh.X25519().GenerateKey(rand.Reader)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.ECDH(peer.PublicKey()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFloorEd25519Sign(b *testing.B) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := make([]byte, 128)
	b.ReportAllocs()
	for b.Loop() {
		ed25519.Sign(priv, msg)
	}
}

func BenchmarkFloorEd25519Verify(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := make([]byte, 128)
	sig := ed25519.Sign(priv, msg)
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("verify")
		}
	}
}

func BenchmarkFloorHPKESeal(b *testing.B) {
	kem := hpke.DHKEM(ecdh.X25519())
	k, _ := kem.GenerateKey()
	msg := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := hpke.Seal(k.PublicKey(), hpke.HKDFSHA256(), hpke.AES128GCM(), nil, msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFloorAES128GCM1K(b *testing.B) {
	block, _ := aes.NewCipher(make([]byte, 16))
	aead, _ := cipher.NewGCM(block)
	nonce := make([]byte, 12)
	msg := make([]byte, 1024)
	dst := make([]byte, 0, 1024+16)
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		aead.Seal(dst[:0], nonce, msg, nil)
	}
}
