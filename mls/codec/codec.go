// Package codec implements the TLS presentation language as MLS uses it
// (RFC 9420 §2.1): fixed-width big-endian integers, opaque data, and vectors
// whose length is a QUIC-style variable-length integer (§2.1.2).
//
// Decoding is strict. A Reader never allocates before it has checked a length
// against the input that remains, rejects non-minimal varints and the
// reserved 0b11 prefix, and rejects trailing bytes inside every vector and at
// the end of the input (Finish). Errors are sticky: after the first failure
// every read returns zero values, so a parser can read a whole structure and
// check the error once. All decoding errors match ErrMalformed with errors.Is.
//
// Encoding never fails except for a vector longer than the 2^30-1 bytes a
// varint can express; that is reported by Writer.Err.
package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrMalformed is matched (errors.Is) by every decoding error of this package.
var ErrMalformed = errors.New("mls: malformed encoding")

// Specific decoding failures. Each one also matches ErrMalformed.
var (
	ErrTruncated        = fmt.Errorf("%w: input truncated", ErrMalformed)
	ErrTrailingBytes    = fmt.Errorf("%w: trailing bytes", ErrMalformed)
	ErrNonMinimalVarint = fmt.Errorf("%w: non-minimal variable-length integer", ErrMalformed)
	ErrInvalidVarint    = fmt.Errorf("%w: variable-length integer with reserved prefix", ErrMalformed)
	ErrInvalidValue     = fmt.Errorf("%w: invalid value", ErrMalformed)
	// ErrTooLong is returned by Writer when a vector exceeds 2^30-1 bytes.
	ErrTooLong = errors.New("mls: vector longer than 2^30-1 bytes")
)

// MaxVarint is the largest value a §2.1.2 varint can carry in MLS: the
// 8-byte form (prefix 0b11) is reserved and invalid.
const MaxVarint = 1<<30 - 1

// Reader decodes from a byte slice. The zero value reads nothing.
type Reader struct {
	buf []byte
	err error
}

// NewReader returns a Reader over b. The Reader does not modify b; the
// slices it returns from Bytes-style reads are copies unless documented.
func NewReader(b []byte) *Reader { return &Reader{buf: b} }

// Err reports the first error encountered.
func (r *Reader) Err() error { return r.err }

// Empty reports whether all input has been consumed (or an error occurred).
func (r *Reader) Empty() bool { return r.err != nil || len(r.buf) == 0 }

// Len is the number of unread bytes.
func (r *Reader) Len() int { return len(r.buf) }

// Rest returns the unread input without consuming it. It aliases the input.
func (r *Reader) Rest() []byte { return r.buf }

// Fail records err (wrapped so it matches ErrMalformed if it does not
// already) unless an earlier error is recorded.
func (r *Reader) Fail(err error) {
	if r.err != nil {
		return
	}
	if !errors.Is(err, ErrMalformed) {
		err = fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	r.err = err
	r.buf = nil
}

// Failf records a formatted ErrInvalidValue error.
func (r *Reader) Failf(format string, args ...any) {
	r.Fail(fmt.Errorf("%w: %s", ErrInvalidValue, fmt.Sprintf(format, args...)))
}

// Finish returns the first error, or ErrTrailingBytes if input remains.
func (r *Reader) Finish() error {
	if r.err != nil {
		return r.err
	}
	if len(r.buf) != 0 {
		return fmt.Errorf("%w (%d)", ErrTrailingBytes, len(r.buf))
	}
	return nil
}

func (r *Reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.buf) {
		r.Fail(ErrTruncated)
		return nil
	}
	b := r.buf[:n:n]
	r.buf = r.buf[n:]
	return b
}

// Uint8 reads one byte.
func (r *Reader) Uint8() uint8 {
	b := r.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}

// Uint16 reads a big-endian uint16.
func (r *Reader) Uint16() uint16 {
	b := r.take(2)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

// Uint32 reads a big-endian uint32.
func (r *Reader) Uint32() uint32 {
	b := r.take(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

// Uint64 reads a big-endian uint64.
func (r *Reader) Uint64() uint64 {
	b := r.take(8)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// Bool reads a one-byte boolean; values other than 0 and 1 are invalid.
func (r *Reader) Bool() bool {
	v := r.Uint8()
	if v > 1 {
		r.Failf("boolean %d", v)
	}
	return v == 1
}

// Varint reads a §2.1.2 variable-length integer, rejecting the reserved
// 8-byte form and any encoding that is longer than necessary.
func (r *Reader) Varint() uint32 {
	if r.err != nil {
		return 0
	}
	if len(r.buf) == 0 {
		r.Fail(ErrTruncated)
		return 0
	}
	prefix := r.buf[0] >> 6
	if prefix == 3 {
		r.Fail(ErrInvalidVarint)
		return 0
	}
	n := 1 << prefix
	b := r.take(n)
	if b == nil {
		return 0
	}
	v := uint32(b[0] & 0x3f)
	for _, c := range b[1:] {
		v = v<<8 | uint32(c)
	}
	if n > 1 && v < 1<<(8*(n/2)-2) {
		// A value that fits the next shorter form must use it (§2.1.2).
		r.Fail(ErrNonMinimalVarint)
		return 0
	}
	return v
}

// Raw reads n bytes without a length prefix and returns a copy.
func (r *Reader) Raw(n int) []byte {
	b := r.take(n)
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// VarBytes reads opaque data<V>. The length is checked against the remaining
// input before anything is allocated. An empty vector decodes as a non-nil
// empty slice so that re-encoding is faithful.
func (r *Reader) VarBytes() []byte {
	n := r.Varint()
	b := r.take(int(n))
	if r.err != nil {
		return nil
	}
	return append([]byte{}, b...)
}

// VarBytesView is VarBytes without the copy: the result is a slice of the
// input, which it keeps alive, and the caller must not modify it. It is
// for decoders that keep large parts of their input as they are (stored
// ratchet tree leaves).
func (r *Reader) VarBytesView() []byte {
	n := r.Varint()
	b := r.take(int(n))
	if r.err != nil {
		return nil
	}
	return b[:len(b):len(b)]
}

// Vector reads a varint-prefixed vector and calls f with a Reader limited to
// its body. f must consume the whole body: leftover bytes are an error, as is
// any error f records.
func (r *Reader) Vector(f func(*Reader)) {
	n := r.Varint()
	body := r.take(int(n))
	if r.err != nil {
		return
	}
	sub := Reader{buf: body}
	f(&sub)
	if err := sub.Finish(); err != nil {
		r.Fail(err)
	}
}

// VectorEach reads a varint-prefixed vector of elements, calling f until the
// body is consumed or an error occurs.
func (r *Reader) VectorEach(f func(*Reader)) {
	r.Vector(func(sub *Reader) {
		for !sub.Empty() {
			f(sub)
		}
	})
}

// Optional reads the presence byte of optional<T> and calls f if present.
func (r *Reader) Optional(f func(*Reader)) (present bool) {
	if r.Bool() && r.err == nil {
		f(r)
		return true
	}
	return false
}

// Writer accumulates an encoding. The zero value is ready to use.
type Writer struct {
	buf []byte
	err error
}

// NewWriter returns a Writer with capacity for n bytes.
func NewWriter(n int) *Writer { return &Writer{buf: make([]byte, 0, n)} }

// Bytes returns the encoding so far.
func (w *Writer) Bytes() []byte { return w.buf }

// Err reports whether a vector was too long to encode.
func (w *Writer) Err() error { return w.err }

// Result returns the encoding and any error.
func (w *Writer) Result() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	return w.buf, nil
}

// Uint8 appends one byte.
func (w *Writer) Uint8(v uint8) { w.buf = append(w.buf, v) }

// Uint16 appends a big-endian uint16.
func (w *Writer) Uint16(v uint16) { w.buf = binary.BigEndian.AppendUint16(w.buf, v) }

// Uint32 appends a big-endian uint32.
func (w *Writer) Uint32(v uint32) { w.buf = binary.BigEndian.AppendUint32(w.buf, v) }

// Uint64 appends a big-endian uint64.
func (w *Writer) Uint64(v uint64) { w.buf = binary.BigEndian.AppendUint64(w.buf, v) }

// Bool appends a one-byte boolean.
func (w *Writer) Bool(v bool) {
	if v {
		w.Uint8(1)
	} else {
		w.Uint8(0)
	}
}

// Raw appends b without a length prefix.
func (w *Writer) Raw(b []byte) { w.buf = append(w.buf, b...) }

// Varint appends v in its minimal §2.1.2 form.
func (w *Writer) Varint(v int) {
	switch {
	case v < 0 || v > MaxVarint:
		if w.err == nil {
			w.err = ErrTooLong
		}
	case v < 1<<6:
		w.buf = append(w.buf, byte(v))
	case v < 1<<14:
		w.buf = append(w.buf, byte(v>>8)|0x40, byte(v))
	default:
		w.buf = append(w.buf, byte(v>>24)|0x80, byte(v>>16), byte(v>>8), byte(v))
	}
}

// VarBytes appends opaque data<V>.
func (w *Writer) VarBytes(b []byte) {
	w.Varint(len(b))
	w.buf = append(w.buf, b...)
}

// Vector appends a varint-prefixed vector whose body f writes. The body is
// written in place and shifted once to make room for the minimal header.
func (w *Writer) Vector(f func(*Writer)) {
	start := len(w.buf)
	f(w)
	n := len(w.buf) - start
	h := VarintLen(n)
	if h == 0 {
		if w.err == nil {
			w.err = ErrTooLong
		}
		return
	}
	w.buf = append(w.buf, make([]byte, h)...)
	copy(w.buf[start+h:], w.buf[start:start+n])
	hdr := w.buf[start : start : start+h]
	switch h {
	case 1:
		hdr = append(hdr, byte(n))
	case 2:
		hdr = append(hdr, byte(n>>8)|0x40, byte(n))
	default:
		hdr = append(hdr, byte(n>>24)|0x80, byte(n>>16), byte(n>>8), byte(n))
	}
	_ = hdr
}

// Optional appends optional<T>: a presence byte, then f's output if present.
func (w *Writer) Optional(present bool, f func(*Writer)) {
	w.Bool(present)
	if present {
		f(w)
	}
}

// VarintLen is the size of the minimal varint header for n, or 0 if n cannot
// be encoded.
func VarintLen(n int) int {
	switch {
	case n < 0 || n > MaxVarint:
		return 0
	case n < 1<<6:
		return 1
	case n < 1<<14:
		return 2
	default:
		return 4
	}
}

// Marshaler is implemented by every MLS wire structure.
type Marshaler interface {
	MarshalMLS(w *Writer)
}

// Unmarshaler is implemented by every MLS wire structure. UnmarshalMLS reads
// exactly one value from r and records any error in r.
type Unmarshaler interface {
	UnmarshalMLS(r *Reader)
}

// Marshal encodes v.
func Marshal(v Marshaler) ([]byte, error) {
	var w Writer
	v.MarshalMLS(&w)
	return w.Result()
}

// Unmarshal decodes exactly one v from b; trailing bytes are an error.
func Unmarshal(b []byte, v Unmarshaler) error {
	r := NewReader(b)
	v.UnmarshalMLS(r)
	return r.Finish()
}
