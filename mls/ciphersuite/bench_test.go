package ciphersuite

import (
	"bytes"
	"testing"
)

// perSuite runs f as a sub-benchmark for every suite.
func perSuite(b *testing.B, f func(b *testing.B, s *Suite)) {
	for _, s := range allSuites(b) {
		b.Run(s.String(), func(b *testing.B) {
			b.ReportAllocs()
			f(b, s)
		})
	}
}

func BenchmarkExpandWithLabel(b *testing.B) {
	perSuite(b, func(b *testing.B, s *Suite) {
		secret := make([]byte, s.HashLen())
		ctx := []byte("some group context")
		for b.Loop() {
			if _, err := s.ExpandWithLabel(secret, "joiner", ctx, s.HashLen()); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDeriveTreeSecret(b *testing.B) {
	perSuite(b, func(b *testing.B, s *Suite) {
		secret := make([]byte, s.HashLen())
		for b.Loop() {
			if _, err := s.DeriveTreeSecret(secret, "key", 7, s.KeyLen()); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDeriveKeyPair(b *testing.B) {
	perSuite(b, func(b *testing.B, s *Suite) {
		ikm := bytes.Repeat([]byte{1}, s.HashLen())
		for b.Loop() {
			if _, err := s.DeriveKeyPair(ikm); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkHPKESeal(b *testing.B) {
	perSuite(b, func(b *testing.B, s *Suite) {
		k, _ := s.GenerateKeyPair(detReader(1))
		pub := k.PublicKey()
		pt := make([]byte, 64)
		for b.Loop() {
			if _, _, err := s.HPKESeal(pub, []byte("info"), nil, pt); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkHPKEOpen(b *testing.B) {
	perSuite(b, func(b *testing.B, s *Suite) {
		k, _ := s.GenerateKeyPair(detReader(1))
		enc, ct, _ := s.HPKESeal(k.PublicKey(), []byte("info"), nil, make([]byte, 64))
		for b.Loop() {
			if _, err := s.HPKEOpen(k, enc, []byte("info"), nil, ct); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkEncryptWithLabel(b *testing.B) {
	perSuite(b, func(b *testing.B, s *Suite) {
		k, _ := s.GenerateKeyPair(detReader(1))
		pub := k.PublicKey()
		pt := make([]byte, s.HashLen())
		ctx := make([]byte, 100)
		for b.Loop() {
			if _, _, err := s.EncryptWithLabel(pub, "UpdatePathNode", ctx, pt); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkSignWithLabel(b *testing.B) {
	perSuite(b, func(b *testing.B, s *Suite) {
		k, _ := s.GenerateSigningKey(detReader(1))
		content := make([]byte, 256)
		for b.Loop() {
			if _, err := s.SignWithLabel(k, "LeafNodeTBS", content); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkVerifyWithLabel(b *testing.B) {
	perSuite(b, func(b *testing.B, s *Suite) {
		k, _ := s.GenerateSigningKey(detReader(1))
		content := make([]byte, 256)
		sig, _ := s.SignWithLabel(k, "LeafNodeTBS", content)
		pub := k.PublicKey()
		for b.Loop() {
			if err := s.VerifyWithLabel(pub, "LeafNodeTBS", content, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAEADSeal1K(b *testing.B) {
	perSuite(b, func(b *testing.B, s *Suite) {
		key, nonce, pt := make([]byte, s.KeyLen()), make([]byte, s.NonceLen()), make([]byte, 1024)
		b.SetBytes(1024)
		for b.Loop() {
			if _, err := s.Seal(key, nonce, nil, pt); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAEADOpen1K(b *testing.B) {
	perSuite(b, func(b *testing.B, s *Suite) {
		key, nonce := make([]byte, s.KeyLen()), make([]byte, s.NonceLen())
		ct, _ := s.Seal(key, nonce, nil, make([]byte, 1024))
		b.SetBytes(1024)
		for b.Loop() {
			if _, err := s.Open(key, nonce, nil, ct); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkHash1K(b *testing.B) {
	perSuite(b, func(b *testing.B, s *Suite) {
		data := make([]byte, 1024)
		b.SetBytes(1024)
		for b.Loop() {
			s.Hash(data)
		}
	})
}
