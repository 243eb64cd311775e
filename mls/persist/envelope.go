package persist

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
// A record whose value is not an RFC 9420 structure is an envelope: a
// MessagePack array whose element 0 is the version of that record's
// layout (a positive integer) and whose further elements are the fields of
// that version, in a fixed order (the tables of records.go for a group's
// records, and of engine's records.go for its own). An array rather
// than a map: field names would double the size of the secret tree records
// written on every message, and a new layout gets a new version anyway.
// MLS structures inside an envelope are bin fields holding their RFC 9420
// encoding, so that the bytes a signature or hash covers are the bytes
// stored.
//
// The decoder is as strict as the RFC 9420 parsers of package wire: one
// encoding per value (the shortest MessagePack form, as the encoder writes
// it; no nil for a missing integer, no str for bin), the exact number of
// fields of the version, no trailing bytes, and lengths checked against the
// remaining input before anything is allocated. Every failure, an unknown
// version included, matches ErrMalformed, ErrTrailing or ErrVersion. This
// is why envelopes are written and read field by field with the Encoder
// and Decoder primitives rather than through struct tags: msgpack's
// reflective decoder takes nil for zero, str for bin and any integer width,
// and allocates whatever a length header claims; and the secret tree
// records, written for every message, are cheaper without reflection.
//
// Envelopes of key material are written into a buffer of exactly their
// size, measured by a first pass, so that the encoder never reallocates and
// leaves no copy of a secret behind; the caller takes ownership of the
// buffer instead of copying it.

// Envelope returns the envelope f writes, in a slice whose capacity is
// exactly its length. f runs twice (measuring, then writing) and must write
// the same thing both times.
func Envelope(f func(e *Encoder)) []byte {
	e := &Encoder{w: envWriter{measure: true}}
	e.enc = msgpack.NewEncoder(&e.w)
	f(e)
	e.w = envWriter{b: make([]byte, 0, e.w.n)}
	f(e)
	out := e.w.b
	if len(out) != cap(out) {
		panic("persist: internal error: envelope shorter than measured")
	}
	return out
}

// ValueEnvelope is the envelope of records that hold one value:
//
//	[version, value bin]
func ValueEnvelope(version uint64, v []byte) []byte {
	return Envelope(func(e *Encoder) {
		e.Array(2)
		e.Uint(version)
		e.Bin(v)
	})
}

// OpenValue decodes a ValueEnvelope of version, whose value is
// at most limit bytes long, into a new slice.
func OpenValue(b []byte, version uint64, limit int) ([]byte, error) {
	d := NewDecoder(b)
	d.Open(version, 1)
	v := d.Bin(limit)
	return v, d.Finish()
}

// OpenSecret decodes a ValueEnvelope of version holding a secret
// of exactly n bytes (n < 0: any length). The secret is a copy: nothing
// refers to b afterwards.
func OpenSecret(b []byte, version uint64, n int) (secret.Secret, error) {
	d := NewDecoder(b)
	d.Open(version, 1)
	s := d.Secret(n)
	if err := d.Finish(); err != nil {
		s.Clear()
		return secret.Secret{}, err
	}
	return s, nil
}

// Encoder writes one envelope. Its writer cannot fail, so the
// encoder's errors are ignored.
type Encoder struct {
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
		panic("persist: internal error: envelope longer than measured")
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
		panic("persist: internal error: envelope longer than measured")
	}
	w.b = append(w.b, c)
	return nil
}

func (e *Encoder) Array(n int)   { _ = e.enc.EncodeArrayLen(n) }
func (e *Encoder) Uint(v uint64) { _ = e.enc.EncodeUint(v) }
func (e *Encoder) Int(v int64)   { _ = e.enc.EncodeInt(v) }
func (e *Encoder) Bool(v bool)   { _ = e.enc.EncodeBool(v) }
func (e *Encoder) Nil()          { _ = e.enc.EncodeNil() }

// Str writes s as a MessagePack str (the engine's hex names).
func (e *Encoder) Str(s string) { _ = e.enc.EncodeString(s) }

// Bin writes b as bin, an empty one for nil (EncodeBytes writes nil).
func (e *Encoder) Bin(b []byte) {
	if b == nil {
		b = []byte{}
	}
	_ = e.enc.EncodeBytes(b)
}

// Decoder reads one envelope. The first error sticks: later reads
// return zero values, and Finish reports it.
type Decoder struct {
	in  []byte
	r   bytes.Reader
	d   *msgpack.Decoder
	err error
}

// The decoder's errors.
var (
	ErrVersion   = errors.New("persist: unknown envelope version")
	ErrTrailing  = errors.New("persist: trailing bytes")
	ErrMalformed = errors.New("persist: malformed envelope")
)

// NewDecoder reads b. A bytes.Reader is an io.ByteScanner, so the
// msgpack decoder reads it directly, without a buffer of its own, and
// r.Len() is the input it has not consumed.
func NewDecoder(b []byte) *Decoder {
	d := &Decoder{d: msgpack.GetDecoder(), in: b}
	d.r.Reset(b)
	d.d.Reset(&d.r)
	return d
}

func (d *Decoder) Fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
	}
}

// Finish reports the first error, or trailing bytes, and releases the
// decoder: nothing refers to the input afterwards.
func (d *Decoder) Finish() error {
	if d.err == nil && d.r.Len() != 0 {
		d.err = fmt.Errorf("%w: %d", ErrTrailing, d.r.Len())
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
func (d *Decoder) code() (byte, bool) {
	if d.err != nil {
		return 0, false
	}
	c, err := d.d.PeekCode()
	if err != nil {
		d.Fail("%v", err)
		return 0, false
	}
	return c, true
}

// Err returns the first error so far.
func (d *Decoder) Err() error { return d.err }

// OpenAny reads the array header and version of an envelope whose layout
// the caller chooses by its version, and returns the version and the
// number of fields after it (at most limit). A layout the caller does not
// know is reported with Unknown.
func (d *Decoder) OpenAny(limit int) (version uint64, fields int) {
	n := d.Array(limit + 1)
	version = d.Uint(math.MaxUint32)
	if d.err != nil {
		return 0, 0
	}
	return version, n - 1
}

// Unknown fails the decoding with ErrVersion: version, with fields
// fields, is no layout the caller knows.
func (d *Decoder) Unknown(version uint64, fields int) {
	if d.err == nil {
		d.err = fmt.Errorf("%w %d with %d fields", ErrVersion, version, fields)
	}
}

// Open reads the array header and version of an envelope that has fields
// fields after the version.
func (d *Decoder) Open(version uint64, fields int) {
	n := d.Array(math.MaxUint16)
	v := d.Uint(math.MaxUint32)
	switch {
	case d.err != nil:
	case v != version:
		d.err = fmt.Errorf("%w %d (want %d)", ErrVersion, v, version)
	case n != fields+1:
		d.Fail("%d fields in version %d, want %d", n-1, v, fields)
	}
}

// Array reads an array header of at most limit elements, each of which
// takes at least one byte of the remaining input.
func (d *Decoder) Array(limit int) int {
	c, ok := d.code()
	if !ok {
		return 0
	}
	if !msgpcode.IsFixedArray(c) && c != msgpcode.Array16 && c != msgpcode.Array32 {
		d.Fail("type %#x for an array", c)
		return 0
	}
	n, err := d.d.DecodeArrayLen()
	switch {
	case err != nil:
		d.Fail("%v", err)
	case c != arrayCode(n):
		d.Fail("non-minimal array length")
	case n > limit || n > d.r.Len():
		d.Fail("array of %d elements", n)
	default:
		return n
	}
	return 0
}

// Uint reads a non-negative integer of at most limit.
func (d *Decoder) Uint(limit uint64) uint64 {
	c, ok := d.code()
	if !ok {
		return 0
	}
	if c > msgpcode.PosFixedNumHigh && (c < msgpcode.Uint8 || c > msgpcode.Uint64) {
		d.Fail("type %#x for an unsigned integer", c)
		return 0
	}
	v, err := d.d.DecodeUint64()
	switch {
	case err != nil:
		d.Fail("%v", err)
	case c != uintCode(v):
		d.Fail("non-minimal integer")
	case v > limit:
		d.Fail("integer %d out of range", v)
	default:
		return v
	}
	return 0
}

// Int reads a signed integer.
func (d *Decoder) Int() int64 {
	c, ok := d.code()
	if !ok {
		return 0
	}
	if !msgpcode.IsFixedNum(c) && (c < msgpcode.Uint8 || c > msgpcode.Int64) {
		d.Fail("type %#x for an integer", c)
		return 0
	}
	v, err := d.d.DecodeInt64()
	switch {
	case err != nil:
		d.Fail("%v", err)
	case c == msgpcode.Uint64 && v < 0:
		d.Fail("integer out of range")
	case c != intCode(v):
		d.Fail("non-minimal integer")
	default:
		return v
	}
	return 0
}

func (d *Decoder) Bool() bool {
	c, ok := d.code()
	if !ok {
		return false
	}
	if c != msgpcode.True && c != msgpcode.False {
		d.Fail("type %#x for a bool", c)
		return false
	}
	v, err := d.d.DecodeBool()
	if err != nil {
		d.Fail("%v", err)
	}
	return v
}

// IsNil consumes a nil and reports whether there was one (an absent
// optional field).
func (d *Decoder) IsNil() bool {
	c, ok := d.code()
	if !ok || c != msgpcode.Nil {
		return false
	}
	if err := d.d.DecodeNil(); err != nil {
		d.Fail("%v", err)
	}
	return true
}

// binLen reads the header of a bin of at most limit bytes (limit < 0:
// any length) that fits in the remaining input.
func (d *Decoder) binLen(limit int) int {
	c, ok := d.code()
	if !ok {
		return 0
	}
	if !msgpcode.IsBin(c) {
		d.Fail("type %#x for bin", c)
		return 0
	}
	n, err := d.d.DecodeBytesLen()
	switch {
	case err != nil:
		d.Fail("%v", err)
	case c != binCode(n):
		d.Fail("non-minimal bin length")
	case n > d.r.Len() || (limit >= 0 && n > limit):
		d.Fail("bin of %d bytes", n)
	default:
		return n
	}
	return 0
}

// Bin reads a bin of at most limit bytes (limit < 0: any length) into a
// new slice (never nil).
func (d *Decoder) Bin(limit int) []byte {
	n := d.binLen(limit)
	if d.err != nil {
		return nil
	}
	b := make([]byte, n)
	if err := d.d.ReadFull(b); err != nil {
		d.Fail("%v", err)
		return nil
	}
	return b
}

// BinView is Bin without the copy: a slice of the input, which the caller
// then keeps alive and must not modify. It is for public records whose
// bytes are kept as they are (tree tiles).
func (d *Decoder) BinView(limit int) []byte {
	n := d.binLen(limit)
	if d.err != nil {
		return nil
	}
	off := len(d.in) - d.r.Len()
	if _, err := d.r.Seek(int64(n), io.SeekCurrent); err != nil {
		d.Fail("%v", err)
		return nil
	}
	return d.in[off : off+n : off+n]
}

// Str reads a str of at most limit bytes, in its shortest form.
func (d *Decoder) Str(limit int) string {
	c, ok := d.code()
	if !ok {
		return ""
	}
	if !msgpcode.IsString(c) {
		d.Fail("type %#x for str", c)
		return ""
	}
	n, err := d.d.DecodeBytesLen()
	switch {
	case err != nil:
		d.Fail("%v", err)
		return ""
	case c != strCode(n):
		d.Fail("non-minimal str length")
		return ""
	case n > d.r.Len() || n > limit:
		d.Fail("str of %d bytes", n)
		return ""
	}
	b := make([]byte, n)
	if err := d.d.ReadFull(b); err != nil {
		d.Fail("%v", err)
		return ""
	}
	return string(b)
}

// Secret reads a bin of exactly n bytes (n < 0: any length) as a secret
// of its own: the only copy of the bytes outside the input. The length is
// checked before a byte of the secret is read.
func (d *Decoder) Secret(n int) secret.Secret {
	l := d.binLen(n)
	if d.err == nil && n >= 0 && l != n {
		d.Fail("secret of %d bytes, want %d", l, n)
	}
	if d.err != nil {
		return secret.Secret{}
	}
	b := make([]byte, l)
	if err := d.d.ReadFull(b); err != nil {
		clear(b)
		d.Fail("%v", err)
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

func strCode(n int) byte {
	switch {
	case n < 32:
		return msgpcode.FixedStrLow | byte(n)
	case n <= math.MaxUint8:
		return msgpcode.Str8
	case n <= math.MaxUint16:
		return msgpcode.Str16
	}
	return msgpcode.Str32
}
