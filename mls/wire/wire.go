// Package wire defines every wire structure of MLS (RFC 9420) with its
// encoding and decoding.
//
// Each type is named after the RFC struct it implements, with the RFC
// definition quoted above it, and has a MarshalMLS(*codec.Writer) method and a
// pointer-receiver UnmarshalMLS(*codec.Reader) method, so any of them can be
// passed to codec.Marshal and codec.Unmarshal or to this package's generic
// Unmarshal:
//
//	msg, err := wire.UnmarshalMLSMessage(b)      // an MLSMessage
//	kp, err := wire.Unmarshal[wire.KeyPackage](b) // a bare KeyPackage
//
// A select in the RFC becomes a struct holding the discriminator and one
// field (a pointer for structs) per case; only the field the discriminator
// selects is encoded, and a nil case encodes as its zero value. Two
// structures select on a value their enclosing structure carries
// (FramedContentAuthData and PrivateMessageContent): they hold that value in a
// ContentType field that is not encoded, and UnmarshalMLS keeps it.
//
// # Strictness
//
// Decoding is strict, so that every value has exactly one encoding and
// re-encoding a decoded value reproduces its input byte for byte:
//
//   - lengths are minimal §2.1.2 varints and no vector has trailing bytes;
//   - optional presence bytes are 0 or 1 (§2.1.1);
//   - every discriminator of a select (wire format, content type, sender
//     type, leaf node source, PSK type, resumption usage, node type,
//     ProposalOrRef type, credential type) must name a case the RFC defines,
//     and fields fixed to mls10 must be mls10; otherwise the error matches
//     ErrUnknownValue;
//   - the padding of a PrivateMessageContent must be all zero (§6.3.1);
//   - an extension list must not name a type twice (§13.4);
//   - a ratchet_tree must not end with a blank node and must hold leaves at
//     even and parents at odd positions (§12.4.3.3).
//
// Unknown extension types decode as opaque Extension values (§13.4);
// unknown proposal types decode as custom proposals whose body is an
// opaque<V> held in Proposal.Custom, the convention of OpenMLS and mls-rs.
// Values where the RFC asks receivers to ignore unknown code points
// (capabilities, ReInit.version, cipher suites) are not checked.
//
// Every decoding error matches codec.ErrMalformed with errors.Is. No input
// makes a decoder panic.
//
// # Signed bytes
//
// KeyPackage, LeafNode and GroupInfo remember the bytes they were decoded
// from, and their TBS methods return the signed part of those bytes, so that
// signatures are verified over what was received. Values built in code are
// re-encoded. A decoded value that is then modified must call ClearRaw
// before its TBS is computed again.
//
// Secrets carried on the wire (GroupSecrets.JoinerSecret,
// PathSecret.PathSecret) are secret.Secret values and never print.
package wire

import (
	"fmt"
	"slices"

	"github.com/mlsengine/mlsengine/mls/codec"
)

// Decoding failures of this package. Each matches codec.ErrMalformed.
var (
	// ErrUnknownValue reports a discriminator or fixed field whose value the
	// RFC does not define where decoding depends on it.
	ErrUnknownValue = fmt.Errorf("%w: unknown value", codec.ErrMalformed)
	// ErrBadPadding reports a PrivateMessageContent whose padding holds a
	// non-zero byte (§6.3.1).
	ErrBadPadding = fmt.Errorf("%w: non-zero padding", codec.ErrMalformed)
	// ErrDuplicateExtension reports an extension list that names a type
	// twice (§13.4).
	ErrDuplicateExtension = fmt.Errorf("%w: duplicate extension type", codec.ErrMalformed)
	// ErrInvalidTree reports a ratchet_tree that ends with a blank node or
	// holds a node of the wrong type for its position (§12.4.3.3).
	ErrInvalidTree = fmt.Errorf("%w: invalid ratchet tree", codec.ErrMalformed)
	// ErrExtensionType is returned by the typed extension decoders when the
	// extension has a different type.
	ErrExtensionType = fmt.Errorf("%w: wrong extension type", codec.ErrMalformed)
)

// unknown records an ErrUnknownValue naming the field and the value.
func unknown(r *codec.Reader, field string, v any) {
	r.Fail(fmt.Errorf("%w: %s %v", ErrUnknownValue, field, v))
}

// Unmarshal decodes exactly one T from b; trailing bytes are an error. It
// serves every type of this package, e.g. Unmarshal[KeyPackage](b).
func Unmarshal[T any, P interface {
	*T
	codec.Unmarshaler
}](b []byte) (*T, error) {
	v := P(new(T))
	if err := codec.Unmarshal(b, v); err != nil {
		return nil, err
	}
	return (*T)(v), nil
}

// Marshal encodes v. The only failure is a vector longer than 2^30-1 bytes,
// which cannot arise from a decoded value.
func Marshal(v codec.Marshaler) ([]byte, error) { return codec.Marshal(v) }

// encode returns v's encoding, or nil if a vector is too long to encode.
// Bytes and TBS helpers use it; callers that must tell the failure apart use
// Marshal.
func encode(v codec.Marshaler) []byte {
	b, err := codec.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}

// orZero returns p, or a pointer to a zero T if p is nil: a union whose
// selected case is nil encodes that case's zero value.
func orZero[T any](p *T) *T {
	if p == nil {
		return new(T)
	}
	return p
}

// captureRaw returns a copy of the bytes r consumed since it held start, or
// nil after an error.
func captureRaw(r *codec.Reader, start []byte) []byte {
	if r.Err() != nil {
		return nil
	}
	n := len(start) - r.Len()
	return slices.Clip(append([]byte(nil), start[:n]...))
}

// writeUint16s and readUint16s encode the uint16 vectors of Capabilities and
// RequiredCapabilities.
func writeUint16s[T ~uint16](w *codec.Writer, vs []T) {
	w.Vector(func(w *codec.Writer) {
		for _, v := range vs {
			w.Uint16(uint16(v))
		}
	})
}

func readUint16s[T ~uint16](r *codec.Reader) []T {
	var vs []T
	r.VectorEach(func(r *codec.Reader) {
		vs = append(vs, T(r.Uint16()))
	})
	return vs
}

// writeList and readList encode a vector of structures.
func writeList[T any, P interface {
	*T
	codec.Marshaler
}](w *codec.Writer, vs []T) {
	w.Vector(func(w *codec.Writer) {
		for i := range vs {
			P(&vs[i]).MarshalMLS(w)
		}
	})
}

func readList[T any, P interface {
	*T
	codec.Unmarshaler
}](r *codec.Reader) []T {
	var vs []T
	r.VectorEach(func(r *codec.Reader) {
		var v T
		P(&v).UnmarshalMLS(r)
		vs = append(vs, v)
	})
	if r.Err() != nil {
		return nil
	}
	return vs
}
