package group

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Envelopes.
//
// A record whose value is not an RFC 9420 structure is an envelope of this
// package: a MessagePack array whose element 0 is the version of that
// record's layout (a positive integer) and whose further elements are the
// fields of that version, in a fixed order (the table in records.go). An
// array rather than a map: field names would double the size of the secret
// tree records written on every message, and a new layout gets a new
// version anyway. MLS structures inside an envelope are bin fields holding
// their RFC 9420 encoding, so that the bytes a signature or hash covers are
// the bytes stored.
//
// The decoder is as strict as the RFC 9420 parsers of package wire: one
// encoding per value (the shortest MessagePack form, as the encoder writes
// it; no nil for a missing integer, no str for bin), the exact number of
// fields of the version, no trailing bytes, and lengths checked against the
// remaining input before anything is allocated. Every failure, an unknown
// version included, matches ErrCorruptState once the caller wraps it
// (corrupt). This is why envelopes are written and read field by field
// with the Encoder and Decoder primitives rather than through struct tags:
// msgpack's reflective decoder takes nil for zero, str for bin and any
// integer width, and allocates whatever a length header claims; and the
// secret tree records, written for every message, are cheaper without
// reflection.
//
// Envelopes of key material are written into a buffer of exactly their
// size, measured by a first pass, so that the encoder never reallocates and
// leaves no copy of a secret behind; the change log takes ownership of the
// buffer (changeLog.own) instead of copying it.

// envelope returns the envelope f writes, in a slice whose capacity is
// exactly its length. f runs twice (measuring, then writing) and must write
// the same thing both times.
func envelope(f func(e *envEncoder)) []byte {
	e := &envEncoder{w: envWriter{measure: true}}
	e.enc = msgpack.NewEncoder(&e.w)
	f(e)
	e.w = envWriter{b: make([]byte, 0, e.w.n)}
	f(e)
	out := e.w.b
	if len(out) != cap(out) {
		panic("group: internal error: envelope shorter than measured")
	}
	return out
}

// valueEnvelope is the envelope of records that hold one value:
//
//	[version, value bin]
func valueEnvelope(version uint64, v []byte) []byte {
	return envelope(func(e *envEncoder) {
		e.array(2)
		e.uint(version)
		e.bin(v)
	})
}

// openValueEnvelope decodes a valueEnvelope of version, whose value is
// at most limit bytes long, into a new slice.
func openValueEnvelope(b []byte, version uint64, limit int) ([]byte, error) {
	d := newEnvDecoder(b)
	d.open(version, 1)
	v := d.bin(limit)
	return v, d.finish()
}

// openSecretEnvelope decodes a valueEnvelope of version holding a secret
// of exactly n bytes (n < 0: any length). The secret is a copy: nothing
// refers to b afterwards.
func openSecretEnvelope(b []byte, version uint64, n int) (secret.Secret, error) {
	d := newEnvDecoder(b)
	d.open(version, 1)
	s := d.secret(n)
	if err := d.finish(); err != nil {
		s.Clear()
		return secret.Secret{}, err
	}
	return s, nil
}

// envEncoder writes one envelope. Its writer cannot fail, so the
// encoder's errors are ignored.
type envEncoder struct {
	enc *msgpack.Encoder
	w   envWriter
}

// envWriter counts the bytes written (measure) or appends them to b
// without ever growing it.
type envWriter struct {
	measure bool
	n       int
	b       []byte
}

func (w *envWriter) Write(p []byte) (int, error) {
	if w.measure {
		w.n += len(p)
		return len(p), nil
	}
	if len(p) > cap(w.b)-len(w.b) {
		panic("group: internal error: envelope longer than measured")
	}
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *envWriter) WriteByte(c byte) error {
	if w.measure {
		w.n++
		return nil
	}
	if len(w.b) == cap(w.b) {
		panic("group: internal error: envelope longer than measured")
	}
	w.b = append(w.b, c)
	return nil
}

func (e *envEncoder) array(n int)   { _ = e.enc.EncodeArrayLen(n) }
func (e *envEncoder) uint(v uint64) { _ = e.enc.EncodeUint(v) }
func (e *envEncoder) int(v int64)   { _ = e.enc.EncodeInt(v) }
func (e *envEncoder) bool(v bool)   { _ = e.enc.EncodeBool(v) }
func (e *envEncoder) nil()          { _ = e.enc.EncodeNil() }

// bin writes b as bin, an empty one for nil (EncodeBytes writes nil).
func (e *envEncoder) bin(b []byte) {
	if b == nil {
		b = []byte{}
	}
	_ = e.enc.EncodeBytes(b)
}

// envDecoder reads one envelope. The first error sticks: later reads
// return zero values, and finish reports it.
type envDecoder struct {
	in  []byte
	r   bytes.Reader
	d   *msgpack.Decoder
	err error
}

var (
	errEnvVersion   = errors.New("unknown envelope version")
	errEnvTrailing  = errors.New("trailing bytes")
	errEnvMalformed = errors.New("malformed envelope")
)

// newEnvDecoder reads b. A bytes.Reader is an io.ByteScanner, so the
// msgpack decoder reads it directly, without a buffer of its own, and
// r.Len() is the input it has not consumed.
func newEnvDecoder(b []byte) *envDecoder {
	d := &envDecoder{d: msgpack.GetDecoder(), in: b}
	d.r.Reset(b)
	d.d.Reset(&d.r)
	return d
}

func (d *envDecoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{errEnvMalformed}, args...)...)
	}
}

// finish reports the first error, or trailing bytes, and releases the
// decoder: nothing refers to the input afterwards.
func (d *envDecoder) finish() error {
	if d.err == nil && d.r.Len() != 0 {
		d.err = fmt.Errorf("%w: %d", errEnvTrailing, d.r.Len())
	}
	if d.d != nil {
		msgpack.PutDecoder(d.d)
		d.d = nil
	}
	d.r.Reset(nil)
	d.in = nil
	return d.err
}

// code returns the next type code without consuming it.
func (d *envDecoder) code() (byte, bool) {
	if d.err != nil {
		return 0, false
	}
	c, err := d.d.PeekCode()
	if err != nil {
		d.fail("%v", err)
		return 0, false
	}
	return c, true
}

// open reads the array header and version of an envelope that has fields
// fields after the version.
func (d *envDecoder) open(version uint64, fields int) {
	n := d.array(math.MaxUint16)
	v := d.uint(math.MaxUint32)
	switch {
	case d.err != nil:
	case v != version:
		d.err = fmt.Errorf("%w %d (want %d)", errEnvVersion, v, version)
	case n != fields+1:
		d.fail("%d fields in version %d, want %d", n-1, v, fields)
	}
}

// array reads an array header of at most limit elements, each of which
// takes at least one byte of the remaining input.
func (d *envDecoder) array(limit int) int {
	c, ok := d.code()
	if !ok {
		return 0
	}
	if !msgpcode.IsFixedArray(c) && c != msgpcode.Array16 && c != msgpcode.Array32 {
		d.fail("type %#x for an array", c)
		return 0
	}
	n, err := d.d.DecodeArrayLen()
	switch {
	case err != nil:
		d.fail("%v", err)
	case c != arrayCode(n):
		d.fail("non-minimal array length")
	case n > limit || n > d.r.Len():
		d.fail("array of %d elements", n)
	default:
		return n
	}
	return 0
}

// uint reads a non-negative integer of at most limit.
func (d *envDecoder) uint(limit uint64) uint64 {
	c, ok := d.code()
	if !ok {
		return 0
	}
	if c > msgpcode.PosFixedNumHigh && (c < msgpcode.Uint8 || c > msgpcode.Uint64) {
		d.fail("type %#x for an unsigned integer", c)
		return 0
	}
	v, err := d.d.DecodeUint64()
	switch {
	case err != nil:
		d.fail("%v", err)
	case c != uintCode(v):
		d.fail("non-minimal integer")
	case v > limit:
		d.fail("integer %d out of range", v)
	default:
		return v
	}
	return 0
}

// int reads a signed integer.
func (d *envDecoder) int() int64 {
	c, ok := d.code()
	if !ok {
		return 0
	}
	if !msgpcode.IsFixedNum(c) && (c < msgpcode.Uint8 || c > msgpcode.Int64) {
		d.fail("type %#x for an integer", c)
		return 0
	}
	v, err := d.d.DecodeInt64()
	switch {
	case err != nil:
		d.fail("%v", err)
	case c == msgpcode.Uint64 && v < 0:
		d.fail("integer out of range")
	case c != intCode(v):
		d.fail("non-minimal integer")
	default:
		return v
	}
	return 0
}

func (d *envDecoder) bool() bool {
	c, ok := d.code()
	if !ok {
		return false
	}
	if c != msgpcode.True && c != msgpcode.False {
		d.fail("type %#x for a bool", c)
		return false
	}
	v, err := d.d.DecodeBool()
	if err != nil {
		d.fail("%v", err)
	}
	return v
}

// isNil consumes a nil and reports whether there was one (an absent
// optional field).
func (d *envDecoder) isNil() bool {
	c, ok := d.code()
	if !ok || c != msgpcode.Nil {
		return false
	}
	if err := d.d.DecodeNil(); err != nil {
		d.fail("%v", err)
	}
	return true
}

// binLen reads the header of a bin of at most limit bytes (limit < 0:
// any length) that fits in the remaining input.
func (d *envDecoder) binLen(limit int) int {
	c, ok := d.code()
	if !ok {
		return 0
	}
	if !msgpcode.IsBin(c) {
		d.fail("type %#x for bin", c)
		return 0
	}
	n, err := d.d.DecodeBytesLen()
	switch {
	case err != nil:
		d.fail("%v", err)
	case c != binCode(n):
		d.fail("non-minimal bin length")
	case n > d.r.Len() || (limit >= 0 && n > limit):
		d.fail("bin of %d bytes", n)
	default:
		return n
	}
	return 0
}

// bin reads a bin of at most limit bytes (limit < 0: any length) into a
// new slice (never nil).
func (d *envDecoder) bin(limit int) []byte {
	n := d.binLen(limit)
	if d.err != nil {
		return nil
	}
	b := make([]byte, n)
	if err := d.d.ReadFull(b); err != nil {
		d.fail("%v", err)
		return nil
	}
	return b
}

// binView is bin without the copy: a slice of the input, which the caller
// then keeps alive and must not modify. It is for public records whose
// bytes are kept as they are (tree tiles).
func (d *envDecoder) binView(limit int) []byte {
	n := d.binLen(limit)
	if d.err != nil {
		return nil
	}
	off := len(d.in) - d.r.Len()
	if _, err := d.r.Seek(int64(n), io.SeekCurrent); err != nil {
		d.fail("%v", err)
		return nil
	}
	return d.in[off : off+n : off+n]
}

// secret reads a bin of exactly n bytes (n < 0: any length) as a secret
// of its own: the only copy of the bytes outside the input. The length is
// checked before a byte of the secret is read.
func (d *envDecoder) secret(n int) secret.Secret {
	l := d.binLen(n)
	if d.err == nil && n >= 0 && l != n {
		d.fail("secret of %d bytes, want %d", l, n)
	}
	if d.err != nil {
		return secret.Secret{}
	}
	b := make([]byte, l)
	if err := d.d.ReadFull(b); err != nil {
		clear(b)
		d.fail("%v", err)
		return secret.Secret{}
	}
	return secret.New(b)
}

// The codes the encoder writes for each value: the shortest form.

func uintCode(v uint64) byte {
	switch {
	case v <= uint64(msgpcode.PosFixedNumHigh):
		return byte(v)
	case v <= math.MaxUint8:
		return msgpcode.Uint8
	case v <= math.MaxUint16:
		return msgpcode.Uint16
	case v <= math.MaxUint32:
		return msgpcode.Uint32
	}
	return msgpcode.Uint64
}

func intCode(v int64) byte {
	switch {
	case v >= 0:
		return uintCode(uint64(v))
	case v >= int64(int8(msgpcode.NegFixedNumLow)):
		return byte(v)
	case v >= math.MinInt8:
		return msgpcode.Int8
	case v >= math.MinInt16:
		return msgpcode.Int16
	case v >= math.MinInt32:
		return msgpcode.Int32
	}
	return msgpcode.Int64
}

func arrayCode(n int) byte {
	switch {
	case n < 16:
		return msgpcode.FixedArrayLow | byte(n)
	case n <= math.MaxUint16:
		return msgpcode.Array16
	}
	return msgpcode.Array32
}

func binCode(n int) byte {
	switch {
	case n <= math.MaxUint8:
		return msgpcode.Bin8
	case n <= math.MaxUint16:
		return msgpcode.Bin16
	}
	return msgpcode.Bin32
}
