package persist

import (
	"math"
	"strconv"
)

// The members of retained past epochs: the signature keys that verify
// their late messages (§6.1).
//
// Layout 2 keeps each past epoch's keys as a delta against the epoch after
// it (the next retained epoch, or the tree of the current one):
// past/<e>/delta/<k>, the leaves whose signature key differed, PastChunk
// of them a record, with the epoch's leaf count. An epoch change costs
// what its commit changed, not the member list, and a load reads the
// deltas as they are. Layout 1 wrote the whole list, past/<e>/members/<k>,
// PastChunk leaves a record; such epochs load as they are, and are written
// so until they age out.

// PastChunk is the number of leaves a past epoch's record names at most,
// so that a record stays far below the storage's bound on a value
// whatever the group's size.
const PastChunk = 1024

// PastPrefix is the common prefix of the records of past epoch e.
func PastPrefix(e uint64) string { return "past/" + strconv.FormatUint(e, 10) + "/" }

// PastContextName names the GroupContext of past epoch e.
func PastContextName(e uint64) string { return PastPrefix(e) + "context" }

// PastDeltaName names part k of the delta of past epoch e
// (PastDeltaValue).
func PastDeltaName(e uint64, k int) string { return PastPrefix(e) + "delta/" + strconv.Itoa(k) }

// PastMembersName names part k of the layout 1 members of past epoch e
// (PastMembersValue).
func PastMembersName(e uint64, k int) string { return PastPrefix(e) + "members/" + strconv.Itoa(k) }

// PastDelta is one leaf's signature key in a past epoch, nil if blank.
type PastDelta struct {
	Leaf uint32
	Key  []byte
}

// PastDeltaValue is a past/<e>/delta/<k> record:
//
//	[1, leaf count uint, [leaf uint, ?bin signature_key, ...]]
//
// with the leaves in increasing order.
func PastDeltaValue(leaves int, delta []PastDelta) []byte {
	return Envelope(func(e *Encoder) {
		e.Array(3)
		e.Uint(pastDeltaVersion)
		e.Uint(uint64(leaves))
		e.Array(2 * len(delta))
		for _, d := range delta {
			e.Uint(uint64(d.Leaf))
			if d.Key == nil {
				e.Nil()
			} else {
				e.Bin(d.Key)
			}
		}
	})
}

// OpenPastDelta decodes a record written by PastDeltaValue, checking
// that its leaves are in increasing order and within the leaf count.
func OpenPastDelta(v []byte) (leaves int, delta []PastDelta, err error) {
	d := NewDecoder(v)
	d.Open(pastDeltaVersion, 2)
	leaves = int(d.Uint(math.MaxUint32))
	n := d.Array(2 * PastChunk)
	if n%2 != 0 {
		d.Fail("odd delta array")
	}
	for i := 0; i < n/2 && d.Err() == nil; i++ {
		pd := PastDelta{Leaf: uint32(d.Uint(math.MaxUint32))}
		if !d.IsNil() {
			pd.Key = d.Bin(-1)
		}
		if pd.Leaf >= uint32(leaves) || (i > 0 && pd.Leaf <= delta[i-1].Leaf) {
			d.Fail("leaf %d out of order or beyond %d leaves", pd.Leaf, leaves)
		}
		delta = append(delta, pd)
	}
	return leaves, delta, d.Finish()
}

// PastMembersValue is a past/<e>/members/<k> record of layout 1: the
// signature keys of at most PastChunk leaves, nil for a blank leaf:
//
//	[1, [?bin signature_key, ...]]
func PastMembersValue(keys [][]byte) []byte {
	return Envelope(func(e *Encoder) {
		e.Array(2)
		e.Uint(pastMembersVersion)
		e.Array(len(keys))
		for _, sk := range keys {
			if sk == nil {
				e.Nil()
			} else {
				e.Bin(sk)
			}
		}
	})
}

// OpenPastMembers decodes a record written by PastMembersValue.
func OpenPastMembers(v []byte) ([][]byte, error) {
	d := NewDecoder(v)
	d.Open(pastMembersVersion, 1)
	n := d.Array(PastChunk)
	keys := make([][]byte, 0, n)
	for range n {
		var sk []byte
		if !d.IsNil() {
			sk = d.Bin(-1)
		}
		keys = append(keys, sk)
	}
	return keys, d.Finish()
}
