package ratchettree

import (
	"encoding/binary"
	"math/bits"
)

// This file holds the allocation-free helpers the rest of the package
// builds on: array tree math (RFC 9420 Appendix C) on plain uint32 indexes,
// a bitset, and the §2.1.2 variable-length integer encoding used to write
// hash inputs straight into a reused buffer.

// level is the number of trailing one bits of x (Appendix C level).
func level(x uint32) uint { return uint(bits.TrailingZeros32(^x)) }

// left and right are the children of parent node x (Appendix C).
func left(x uint32) uint32  { return x ^ (1 << (level(x) - 1)) }
func right(x uint32) uint32 { return x ^ (3 << (level(x) - 1)) }

// parentOf is the parent of x in a tree large enough to contain it
// (Appendix C parent, without the root check).
func parentOf(x uint32) uint32 {
	k := level(x)
	b := (x >> (k + 1)) & 1
	return (x | 1<<k) ^ (b << (k + 1))
}

// span is the inclusive range of node indexes of the subtree under x: the
// array representation keeps every subtree contiguous.
func span(x uint32) (lo, hi uint32) {
	h := uint32(1)<<level(x) - 1
	return x - h, x + h
}

// leafSpan is the inclusive range of leaf indexes under x.
func leafSpan(x uint32) (lo, hi uint32) {
	a, b := span(x)
	return a / 2, b / 2
}

// rootOf is the root of a tree with n leaves (n a power of two).
func rootOf(n uint32) uint32 { return n - 1 }

// width is the number of nodes of a tree with n > 0 leaves.
func width(n uint32) uint32 { return 2*n - 1 }

// bitset is a fixed-capacity set of node indexes.
type bitset []uint64

func newBitset(n uint32) bitset { return make(bitset, (uint64(n)+63)/64) }

func (b bitset) get(i uint32) bool { return b[i/64]&(1<<(i%64)) != 0 }
func (b bitset) set(i uint32)      { b[i/64] |= 1 << (i % 64) }
func (b bitset) clear(i uint32)    { b[i/64] &^= 1 << (i % 64) }

func (b bitset) put(i uint32, v bool) {
	if v {
		b.set(i)
	} else {
		b.clear(i)
	}
}

// rangeMask returns the mask of bits lo..hi (inclusive) within one word.
func rangeMask(lo, hi uint32) uint64 {
	m := ^uint64(0) << (lo % 64)
	if hi%64 != 63 {
		m &= (uint64(1) << (hi%64 + 1)) - 1
	}
	return m
}

// any reports whether a bit in lo..hi (inclusive) is set.
func (b bitset) any(lo, hi uint32) bool {
	wl, wh := lo/64, hi/64
	if wl == wh {
		return b[wl]&rangeMask(lo, hi) != 0
	}
	if b[wl]&rangeMask(lo, 63) != 0 || b[wh]&rangeMask(0, hi) != 0 {
		return true
	}
	for _, w := range b[wl+1 : wh] {
		if w != 0 {
			return true
		}
	}
	return false
}

// setRange sets (v true) or clears the bits lo..hi (inclusive).
func (b bitset) setRange(lo, hi uint32, v bool) {
	for lo <= hi {
		w := lo / 64
		end := min(hi, w*64+63)
		m := rangeMask(lo, end)
		if v {
			b[w] |= m
		} else {
			b[w] &^= m
		}
		if end == hi {
			return
		}
		lo = end + 1
	}
}

// grown returns b with room for n bits, keeping its contents.
func (b bitset) grown(n uint32) bitset {
	need := int((uint64(n) + 63) / 64)
	if need <= len(b) {
		return b
	}
	nb := make(bitset, need)
	copy(nb, b)
	return nb
}

// appendVarint appends v in its minimal §2.1.2 form; v < 2^30.
func appendVarint(b []byte, v int) []byte {
	switch {
	case v < 1<<6:
		return append(b, byte(v))
	case v < 1<<14:
		return append(b, byte(v>>8)|0x40, byte(v))
	default:
		return append(b, byte(v>>24)|0x80, byte(v>>16), byte(v>>8), byte(v))
	}
}

// appendVarBytes appends opaque data<V>.
func appendVarBytes(b, data []byte) []byte {
	return append(appendVarint(b, len(data)), data...)
}

// appendUint32 appends a big-endian uint32.
func appendUint32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }

// readVarint reads a §2.1.2 varint from the front of b. It is used only on
// encodings this package or package wire produced or checked, but still
// refuses truncated input instead of panicking.
func readVarint(b []byte) (v, n int, ok bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	switch b[0] >> 6 {
	case 0:
		return int(b[0] & 0x3f), 1, true
	case 1:
		if len(b) < 2 {
			return 0, 0, false
		}
		return int(b[0]&0x3f)<<8 | int(b[1]), 2, true
	case 2:
		if len(b) < 4 {
			return 0, 0, false
		}
		return int(b[0]&0x3f)<<24 | int(b[1])<<16 | int(b[2])<<8 | int(b[3]), 4, true
	}
	return 0, 0, false
}

// skim walks an encoded structure field by field without allocating. Once a
// read fails every later read fails too.
type skim struct {
	b  []byte
	ok bool
}

func (s *skim) take(n int) []byte {
	if !s.ok || n < 0 || n > len(s.b) {
		s.ok = false
		return nil
	}
	v := s.b[:n:n]
	s.b = s.b[n:]
	return v
}

func (s *skim) varBytes() []byte {
	if !s.ok {
		return nil
	}
	n, k, ok := readVarint(s.b)
	if !ok {
		s.ok = false
		return nil
	}
	s.b = s.b[k:]
	return s.take(n)
}

func (s *skim) uint8() uint8 {
	b := s.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (s *skim) uint16() uint16 {
	b := s.take(2)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

func leadingZeros64(x uint64) int { return bits.LeadingZeros64(x) }

func trailingZeros64(x uint64) int { return bits.TrailingZeros64(x) }

// next returns the first set bit in i..hi (inclusive).
func (b bitset) next(i, hi uint32) (uint32, bool) {
	for i <= hi {
		w := b[i/64] & (^uint64(0) << (i % 64))
		if w != 0 {
			x := i/64*64 + uint32(bits.TrailingZeros64(w))
			return x, x <= hi
		}
		if i/64 == hi/64 {
			return 0, false
		}
		i = (i/64 + 1) * 64
	}
	return 0, false
}
