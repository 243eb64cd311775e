package ciphersuite

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
)

// hmacStackBuf bounds the inputs that hmacSum handles on the stack.
const hmacStackBuf = 384

// blockSize is the block size of the suite's hash: HMAC pads keys to it.
func (s *Suite) blockSize() int {
	if s.hash == sha256Alg {
		return sha256.BlockSize
	}
	return sha512.BlockSize
}

// sum appends the suite's hash of data to dst.
func (s *Suite) sum(dst, data []byte) []byte {
	switch s.hash {
	case sha256Alg:
		h := sha256.Sum256(data)
		return append(dst, h[:]...)
	case sha384Alg:
		h := sha512.Sum384(data)
		return append(dst, h[:]...)
	default:
		h := sha512.Sum512(data)
		return append(dst, h[:]...)
	}
}

// hmacSum appends HMAC(key, msg) (RFC 2104) with the suite's hash to dst.
//
// MLS derives most secrets from Nh-byte keys and short labels, where
// crypto/hmac's setup (two hash objects, pads, saved state: six
// allocations) costs more than the hashing. For a key of at most one block
// and a short message this computes
//
//	H((K ^ opad) || H((K ^ ipad) || msg))
//
// with the one-shot SHA-2 functions over a stack buffer, which is about
// twice as fast; other inputs go through crypto/hmac. Tests compare both.
func (s *Suite) hmacSum(dst, key, msg []byte) []byte {
	if out, ok := s.hmacSmall(dst, key, msg); ok {
		return out
	}
	m := hmac.New(s.newHash, key)
	m.Write(msg)
	return m.Sum(dst)
}

// hmacSmall is the stack-buffer path of hmacSum; ok is false if key or msg
// is too long for it. It does not retain key or msg.
func (s *Suite) hmacSmall(dst, key, msg []byte) (out []byte, ok bool) {
	bs := s.blockSize()
	if len(key) > bs || bs+len(msg) > hmacStackBuf {
		return nil, false
	}
	var buf [hmacStackBuf]byte
	in := buf[:bs+len(msg)]
	for i := range bs {
		in[i] = 0x36
	}
	for i, k := range key {
		in[i] ^= k
	}
	copy(in[bs:], msg)
	var innerBuf [sha512.Size]byte
	inner := s.sum(innerBuf[:0], in)
	outer := buf[:bs+len(inner)]
	for i := range bs {
		outer[i] = 0x5c
	}
	for i, k := range key {
		outer[i] ^= k
	}
	copy(outer[bs:], inner)
	dst = s.sum(dst, outer)
	// The pads reveal the key; scrub them (best effort, as for all secrets).
	clear(buf[:bs+len(msg)])
	clear(innerBuf[:])
	return dst, true
}
