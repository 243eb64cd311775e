package persist

import (
	"bytes"
	"runtime"
	"testing"
)

// TestEnvelopeStrict checks that only the shortest MessagePack form of
// each value is accepted, so that a value has a single encoding, and that
// lengths are checked against the input before anything is allocated.
func TestEnvelopeStrict(t *testing.T) {
	open := func(b []byte) error {
		_, err := OpenValue(b, 1, -1)
		return err
	}
	if err := open([]byte{0x92, 0x01, 0xc4, 0x02, 0xaa, 0xbb}); err != nil {
		t.Fatalf("valid envelope: %v", err)
	}
	for name, b := range map[string][]byte{
		"empty":                  {},
		"not an array":           {0x01},
		"map":                    {0x82, 0xa1, 'v', 0x01, 0xa1, 'b', 0xc4, 0x00},
		"array16 of 2":           {0xdc, 0x00, 0x02, 0x01, 0xc4, 0x00},
		"array32 of 2":           {0xdd, 0x00, 0x00, 0x00, 0x02, 0x01, 0xc4, 0x00},
		"nil array":              {0xc0},
		"uint8 version":          {0x92, 0xcc, 0x01, 0xc4, 0x00},
		"int8 version":           {0x92, 0xd0, 0x01, 0xc4, 0x00},
		"nil version":            {0x92, 0xc0, 0xc4, 0x00},
		"negative version":       {0x92, 0xff, 0xc4, 0x00},
		"float version":          {0x92, 0xca, 0x3f, 0x80, 0x00, 0x00, 0xc4, 0x00},
		"str value":              {0x92, 0x01, 0xa2, 0xaa, 0xbb},
		"nil value":              {0x92, 0x01, 0xc0},
		"bin16 short":            {0x92, 0x01, 0xc5, 0x00, 0x01, 0xaa},
		"bin32 short":            {0x92, 0x01, 0xc6, 0x00, 0x00, 0x00, 0x01, 0xaa},
		"bin past the end":       {0x92, 0x01, 0xc4, 0x03, 0xaa},
		"bin32 of 4 GiB":         {0x92, 0x01, 0xc6, 0xff, 0xff, 0xff, 0xff},
		"array32 of 4G elements": {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01},
		"missing field":          {0x91, 0x01},
		"extra field":            {0x93, 0x01, 0xc4, 0x00, 0xc0},
		"trailing byte":          {0x92, 0x01, 0xc4, 0x00, 0x00},
		"ext":                    {0x92, 0x01, 0xd4, 0x00, 0x00},
	} {
		if err := open(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestEnvelopeNoStrayCopies checks that encoding a secret allocates one
// buffer of its size: the encoder never grows one and drops the old, which
// would leave a copy nobody clears. The encoder's own small allocations
// hold no payload (msgpack writes bin payloads straight to the writer),
// so the bytes allocated per envelope stay below twice the secret's size.
func TestEnvelopeNoStrayCopies(t *testing.T) {
	s := bytes.Repeat([]byte{7}, 64<<10)
	var before, after runtime.MemStats
	const runs = 50
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		b := ValueEnvelope(1, s)
		clear(b)
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / runs; per >= 2*uint64(len(s)) {
		t.Fatalf("%d bytes allocated per envelope of a %d-byte secret: a copy was made", per, len(s))
	}
}
