package ciphersuite

import "github.com/mlsengine/mlsengine/mls/codec"

// labelPrefix is prepended to every MLS label (RFC 9420 §5.1.2, §5.1.3, §8).
const labelPrefix = "MLS 1.0 "

// appendVarint appends n as a minimal RFC 9420 §2.1.2 variable-length
// integer; it is the encoding codec.Writer.Varint produces, written into a
// caller-sized buffer so that a labeled structure costs one allocation.
// Callers check n with fitsVarint first.
func appendVarint(b []byte, n int) []byte {
	switch codec.VarintLen(n) {
	case 1:
		return append(b, byte(n))
	case 2:
		return append(b, byte(n>>8)|0x40, byte(n))
	default:
		return append(b, byte(n>>24)|0x80, byte(n>>16), byte(n>>8), byte(n))
	}
}

func fitsVarint(n int) bool { return n >= 0 && n <= codec.MaxVarint }

// labeledSize is the encoded size of
//
//	struct {
//	    opaque label<V> = "MLS 1.0 " + label;
//	    opaque content<V>;
//	}
//
// the shape shared by SignContent (§5.1.2), EncryptContext (§5.1.3) and the
// tail of KDFLabel (§8). ok is false if a field is too long for a varint.
func labeledSize(label string, content []byte) (n int, ok bool) {
	l := len(labelPrefix) + len(label)
	if !fitsVarint(l) || !fitsVarint(len(content)) {
		return 0, false
	}
	return codec.VarintLen(l) + l + codec.VarintLen(len(content)) + len(content), true
}

// appendLabeled appends the structure described at labeledSize. Callers
// check labeledSize first.
func appendLabeled(b []byte, label string, content []byte) []byte {
	b = appendVarint(b, len(labelPrefix)+len(label))
	b = append(b, labelPrefix...)
	b = append(b, label...)
	b = appendVarint(b, len(content))
	return append(b, content...)
}

// labeled returns the encoding described at labeledSize in a new buffer.
func labeled(label string, content []byte) ([]byte, error) {
	n, ok := labeledSize(label, content)
	if !ok {
		return nil, ErrInvalidLength
	}
	return appendLabeled(make([]byte, 0, n), label, content), nil
}
