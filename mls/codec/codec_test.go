package codec

import (
	"bytes"
	"errors"
	"testing"
)

func TestVarintRoundTrip(t *testing.T) {
	for _, v := range []int{0, 1, 63, 64, 255, 16383, 16384, 1<<30 - 1} {
		var w Writer
		w.Varint(v)
		if got, want := len(w.Bytes()), VarintLen(v); got != want {
			t.Fatalf("Varint(%d) wrote %d bytes, want %d", v, got, want)
		}
		r := NewReader(w.Bytes())
		if got := r.Varint(); got != uint32(v) || r.Finish() != nil {
			t.Fatalf("Varint(%d) read back %d, err %v", v, got, r.Finish())
		}
	}
}

func TestVarintRejects(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want error
	}{
		{[]byte{}, ErrTruncated},
		{[]byte{0x40}, ErrTruncated},
		{[]byte{0x80, 0, 0}, ErrTruncated},
		{[]byte{0xc0, 0, 0, 0, 0, 0, 0, 1}, ErrInvalidVarint},
		{[]byte{0x40, 0x3f}, ErrNonMinimalVarint},
		{[]byte{0x80, 0x00, 0x3f, 0xff}, ErrNonMinimalVarint},
		{[]byte{0x80, 0, 0, 1}, ErrNonMinimalVarint},
	} {
		r := NewReader(tc.in)
		r.Varint()
		err := r.Finish()
		if !errors.Is(err, tc.want) || !errors.Is(err, ErrMalformed) {
			t.Errorf("%x: err %v, want %v", tc.in, err, tc.want)
		}
	}
}

func TestWriterTooLong(t *testing.T) {
	var w Writer
	w.Varint(1 << 30)
	if _, err := w.Result(); !errors.Is(err, ErrTooLong) {
		t.Fatalf("err %v, want ErrTooLong", err)
	}
}

func TestVectorNoAllocationBeforeCheck(t *testing.T) {
	// A header claiming 2^30-1 bytes over a 4-byte input must fail without
	// allocating the claimed length.
	in := []byte{0xbf, 0xff, 0xff, 0xff}
	allocs := testing.AllocsPerRun(10, func() {
		r := NewReader(in)
		if r.VarBytes() != nil || !errors.Is(r.Err(), ErrTruncated) {
			t.Fatal("expected truncation")
		}
	})
	if allocs > 2 {
		t.Fatalf("%v allocations for a truncated vector", allocs)
	}
}

// nested is a small structure exercising vectors inside vectors.
type nested struct {
	A  uint16
	Bs [][]byte
	O  *uint32
}

func (n *nested) MarshalMLS(w *Writer) {
	w.Uint16(n.A)
	w.Vector(func(w *Writer) {
		for _, b := range n.Bs {
			w.VarBytes(b)
		}
	})
	w.Optional(n.O != nil, func(w *Writer) { w.Uint32(*n.O) })
}

func (n *nested) UnmarshalMLS(r *Reader) {
	*n = nested{}
	n.A = r.Uint16()
	r.VectorEach(func(r *Reader) { n.Bs = append(n.Bs, r.VarBytes()) })
	r.Optional(func(r *Reader) { v := r.Uint32(); n.O = &v })
}

func TestNestedRoundTripAndStrictness(t *testing.T) {
	o := uint32(7)
	big := bytes.Repeat([]byte{1}, 300) // forces a 2-byte header inside
	in := &nested{A: 9, Bs: [][]byte{{}, {1, 2}, big}, O: &o}
	enc, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out nested
	if err := Unmarshal(enc, &out); err != nil {
		t.Fatal(err)
	}
	again, _ := Marshal(&out)
	if !bytes.Equal(enc, again) {
		t.Fatal("re-encoding differs")
	}
	// No strict prefix parses, and an extra byte is rejected.
	for i := range enc {
		if err := Unmarshal(enc[:i], &out); !errors.Is(err, ErrMalformed) {
			t.Fatalf("prefix %d: err %v", i, err)
		}
	}
	if err := Unmarshal(append(enc, 0), &out); !errors.Is(err, ErrTrailingBytes) {
		t.Fatalf("extended: err %v", err)
	}
	// Bad presence byte.
	bad := append([]byte(nil), enc...)
	bad[len(bad)-5] = 2
	if err := Unmarshal(bad, &out); !errors.Is(err, ErrInvalidValue) {
		t.Fatalf("presence 2: err %v", err)
	}
}

func FuzzReaderNested(f *testing.F) {
	o := uint32(1)
	seed, _ := Marshal(&nested{A: 1, Bs: [][]byte{{1}, {}}, O: &o})
	f.Add(seed)
	f.Fuzz(func(t *testing.T, in []byte) {
		var n nested
		if err := Unmarshal(in, &n); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			return
		}
		out, err := Marshal(&n)
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("re-encoding differs: %x vs %x", out, in)
		}
	})
}
