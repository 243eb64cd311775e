package ciphersuite

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
)

// Hash returns the suite's hash of data.
func (s *Suite) Hash(data []byte) []byte {
	switch s.hash {
	case sha256Alg:
		h := sha256.Sum256(data)
		return h[:]
	case sha384Alg:
		h := sha512.Sum384(data)
		return h[:]
	default:
		h := sha512.Sum512(data)
		return h[:]
	}
}

// Extract is HKDF-Extract (RFC 5869) with the suite's hash. An empty salt
// behaves as Nh zero bytes, as RFC 5869 specifies: HMAC pads its key with
// zeros to the block size, so both give the same key.
func (s *Suite) Extract(salt, ikm []byte) []byte {
	return s.hmacSum(make([]byte, 0, s.nh), salt, ikm)
}

// Expand is HKDF-Expand (RFC 5869) with the suite's hash. length must be in
// [0, 255*Nh].
func (s *Suite) Expand(prk, info []byte, length int) ([]byte, error) {
	if length < 0 || length > 255*s.nh {
		return nil, fmt.Errorf("%w: HKDF-Expand length %d", ErrInvalidLength, length)
	}
	buf := make([]byte, len(info)+1)
	copy(buf, info)
	return s.expand(prk, buf, length), nil
}

// expand is HKDF-Expand where info carries one spare trailing byte for the
// block counter, so each block is a single HMAC write. The caller has
// checked length.
func (s *Suite) expand(prk, infoCtr []byte, length int) []byte {
	if length <= s.nh {
		// One block, T(1) = HMAC(PRK, info || 0x01): the common case.
		infoCtr[len(infoCtr)-1] = 1
		return s.hmacSum(make([]byte, 0, s.nh), prk, infoCtr)[:length]
	}
	blocks := (length + s.nh - 1) / s.nh
	out := make([]byte, 0, blocks*s.nh)
	m := hmac.New(s.newHash, prk)
	for i := 1; i <= blocks; i++ {
		if i > 1 {
			m.Reset()
			m.Write(out[len(out)-s.nh:])
		}
		infoCtr[len(infoCtr)-1] = byte(i)
		m.Write(infoCtr)
		out = m.Sum(out)
	}
	return out[:length]
}

// MAC is HMAC with the suite's hash (§17.1: all suites use HMAC).
func (s *Suite) MAC(key, data []byte) []byte {
	return s.hmacSum(make([]byte, 0, s.nh), key, data)
}

// VerifyMAC reports, in constant time, whether tag is MAC(key, data).
func (s *Suite) VerifyMAC(key, data, tag []byte) bool {
	return hmac.Equal(s.MAC(key, data), tag)
}

// ExpandWithLabel is the §8 function
//
//	ExpandWithLabel(Secret, Label, Context, Length) =
//	    KDF.Expand(Secret, KDFLabel, Length)
//
// where KDFLabel is {uint16 length; opaque label<V> = "MLS 1.0 " + Label;
// opaque context<V>}. length must be in [0, min(65535, 255*Nh)].
func (s *Suite) ExpandWithLabel(secret []byte, label string, context []byte, length int) ([]byte, error) {
	return s.expandWithLabel(secret, label, context, length)
}

func (s *Suite) expandWithLabel(secret []byte, label string, context []byte, length int) ([]byte, error) {
	if length < 0 || length > 0xffff || length > 255*s.nh {
		return nil, fmt.Errorf("%w: ExpandWithLabel length %d", ErrInvalidLength, length)
	}
	n, ok := labeledSize(label, context)
	if !ok {
		return nil, fmt.Errorf("%w: KDFLabel too long", ErrInvalidLength)
	}
	// One buffer: KDFLabel followed by the HKDF block counter.
	info := make([]byte, 0, 2+n+1)
	info = append(info, byte(length>>8), byte(length))
	info = appendLabeled(info, label, context)
	info = append(info, 0)
	return s.expand(secret, info, length), nil
}

// DeriveSecret is the §8 function DeriveSecret(Secret, Label) =
// ExpandWithLabel(Secret, Label, "", Nh). It returns nil only if label is
// longer than a varint can encode (2^30 bytes), which no MLS label is.
func (s *Suite) DeriveSecret(secret []byte, label string) []byte {
	out, err := s.expandWithLabel(secret, label, nil, s.nh)
	if err != nil {
		return nil
	}
	return out
}

// DeriveTreeSecret is the §9.1 function
//
//	DeriveTreeSecret(Secret, Label, Generation, Length) =
//	    ExpandWithLabel(Secret, Label, Generation, Length)
//
// with Generation encoded as a big-endian uint32.
func (s *Suite) DeriveTreeSecret(secret []byte, label string, generation uint32, length int) ([]byte, error) {
	g := [4]byte{byte(generation >> 24), byte(generation >> 16), byte(generation >> 8), byte(generation)}
	return s.expandWithLabel(secret, label, g[:], length)
}

// RefHash is the §5.2 function RefHash(label, value) = Hash(RefHashInput),
// RefHashInput being {opaque label<V>; opaque value<V>}. The label is used
// as given (no "MLS 1.0 " prefix is added). The value is hashed in place,
// not copied. RefHash returns nil only if label or value is longer than a
// varint can encode (2^30 bytes), which no MLS structure is.
func (s *Suite) RefHash(label string, value []byte) []byte {
	if !fitsVarint(len(label)) || !fitsVarint(len(value)) {
		return nil
	}
	head := make([]byte, 0, 4+len(label)+4)
	head = appendVarint(head, len(label))
	head = append(head, label...)
	head = appendVarint(head, len(value))
	h := s.newHash()
	h.Write(head)
	h.Write(value)
	return h.Sum(make([]byte, 0, s.nh))
}

// MakeKeyPackageRef is RefHash("MLS 1.0 KeyPackage Reference", keyPackage)
// (§5.2), keyPackage being the encoded KeyPackage.
func (s *Suite) MakeKeyPackageRef(keyPackage []byte) []byte {
	return s.RefHash("MLS 1.0 KeyPackage Reference", keyPackage)
}

// MakeProposalRef is RefHash("MLS 1.0 Proposal Reference",
// authenticatedContent) (§5.2), authenticatedContent being the encoded
// AuthenticatedContent that carries the proposal.
func (s *Suite) MakeProposalRef(authenticatedContent []byte) []byte {
	return s.RefHash("MLS 1.0 Proposal Reference", authenticatedContent)
}
