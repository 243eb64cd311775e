package ciphersuite

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// NewAEAD returns the suite's AEAD keyed with key, for callers that encrypt
// several messages under one key; Seal and Open build one per call. key must
// be Nk bytes. The AEAD's nonce size is Nn and its tag is 16 bytes.
func (s *Suite) NewAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != s.nk {
		return nil, fmt.Errorf("%w: AEAD key is %d bytes, want %d", ErrInvalidKey, len(key), s.nk)
	}
	if s.aead == chaCha20Poly1305 {
		a, err := chacha20poly1305.New(key)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
		}
		return a, nil
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	return a, nil
}

func (s *Suite) checkNonce(nonce []byte) error {
	if len(nonce) != s.nn {
		return fmt.Errorf("%w: AEAD nonce is %d bytes, want %d", ErrInvalidLength, len(nonce), s.nn)
	}
	return nil
}

// Seal encrypts and authenticates plaintext and authenticates aad with the
// suite's AEAD, returning ciphertext||tag in a new slice. key must be Nk
// bytes and nonce Nn bytes. A key/nonce pair must never be used twice.
func (s *Suite) Seal(key, nonce, aad, plaintext []byte) ([]byte, error) {
	if err := s.checkNonce(nonce); err != nil {
		return nil, err
	}
	a, err := s.NewAEAD(key)
	if err != nil {
		return nil, err
	}
	return a.Seal(make([]byte, 0, len(plaintext)+a.Overhead()), nonce, plaintext, aad), nil
}

// Open authenticates and decrypts ciphertext||tag. It returns an error
// matching ErrDecryption if authentication fails.
func (s *Suite) Open(key, nonce, aad, ciphertext []byte) ([]byte, error) {
	if err := s.checkNonce(nonce); err != nil {
		return nil, err
	}
	a, err := s.NewAEAD(key)
	if err != nil {
		return nil, err
	}
	if len(ciphertext) < a.Overhead() {
		return nil, fmt.Errorf("%w: ciphertext shorter than the tag", ErrDecryption)
	}
	pt, err := a.Open(make([]byte, 0, len(ciphertext)-a.Overhead()), nonce, ciphertext, aad)
	if err != nil {
		return nil, ErrDecryption
	}
	return pt, nil
}
