package group

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/mlsengine/mlsengine/mls/treemath"
)

// The members of retained past epochs: the signature keys that verify
// their late messages (§6.1).
//
// Layout 2 stores each past epoch's keys as a delta against the epoch
// after it (the next retained epoch, or the tree of the current one):
// past/<e>/delta/<k>, the leaves whose signature key differed, pastChunk
// of them a record, with the epoch's leaf count. An epoch change writes
// what its commit changed, not the member list. Layout 1 wrote the whole
// list, past/<e>/members/<k>; such epochs load as they are, and Records
// keeps writing them so until they age out.

// pastDeltaVersion is the envelope version of past/<e>/delta/<k>.
const pastDeltaVersion = 1

// treeSigKeys returns the signature key of leaf l of the group's tree, nil
// beyond it.
func (g *Group) treeSigKey(l int) []byte {
	if uint64(l) >= uint64(g.tree.LeafCount()) {
		return nil
	}
	return g.tree.SignatureKey(treemath.LeafIndex(l))
}

// logPast logs the public records of a retained past epoch m: its context,
// and its members, as a delta against next (the keys of the epoch after
// it; nil: the group's tree), or as the whole list for an epoch stored so.
func (g *Group) logPast(m *msgEpoch, next [][]byte) {
	g.log.own(GroupScope, Public, pastName(m.epoch, "context"), m.ctx.Bytes())
	if m.fullMembers {
		for k := 0; k*pastChunk < len(m.sigKeys); k++ {
			keys := m.sigKeys[k*pastChunk : min((k+1)*pastChunk, len(m.sigKeys))]
			g.log.own(GroupScope, Public, pastName(m.epoch, "members/"+strconv.Itoa(k)), pastMembersValue(keys))
		}
		return
	}
	nextKey := g.treeSigKey
	if next != nil {
		nextKey = func(l int) []byte {
			if l < len(next) {
				return next[l]
			}
			return nil
		}
	}
	// Leaves beyond the epoch's count are cut off when the delta is
	// applied, so only those below it are compared.
	var delta []pastDelta
	for l, k := range m.sigKeys {
		if nk := nextKey(l); (k == nil) != (nk == nil) || !bytes.Equal(k, nk) {
			delta = append(delta, pastDelta{leaf: uint32(l), key: k})
		}
	}
	for k := 0; k == 0 || k*pastChunk < len(delta); k++ {
		part := delta[min(k*pastChunk, len(delta)):min((k+1)*pastChunk, len(delta))]
		g.log.own(GroupScope, Public, pastName(m.epoch, "delta/"+strconv.Itoa(k)), pastDeltaValue(len(m.sigKeys), part))
	}
}

// logPastEpochs logs every retained past epoch, each against the next.
func (g *Group) logPastEpochs() {
	for i, m := range g.past {
		var next [][]byte
		if i+1 < len(g.past) {
			next = g.past[i+1].sigKeys
		}
		g.logPast(m, next)
	}
}

// pastDelta is one leaf's signature key in a past epoch, nil if blank.
type pastDelta struct {
	leaf uint32
	key  []byte
}

// pastDeltaValue is a past/<e>/delta/<k> record:
//
//	[1, leaf count uint, [leaf uint, ?bin signature_key, ...]]
//
// with the leaves in increasing order.
func pastDeltaValue(leaves int, delta []pastDelta) []byte {
	return envelope(func(e *envEncoder) {
		e.array(3)
		e.uint(pastDeltaVersion)
		e.uint(uint64(leaves))
		e.array(2 * len(delta))
		for _, d := range delta {
			e.uint(uint64(d.leaf))
			if d.key == nil {
				e.nil()
			} else {
				e.bin(d.key)
			}
		}
	})
}

// openPastDelta decodes a record written by pastDeltaValue.
func openPastDelta(v []byte) (leaves int, delta []pastDelta, err error) {
	d := newEnvDecoder(v)
	d.open(pastDeltaVersion, 2)
	leaves = int(d.uint(math.MaxUint32))
	n := d.array(2 * pastChunk)
	if n%2 != 0 {
		d.fail("odd delta array")
	}
	for i := 0; i < n/2 && d.err == nil; i++ {
		pd := pastDelta{leaf: uint32(d.uint(math.MaxUint32))}
		if !d.isNil() {
			pd.key = d.bin(-1)
		}
		if pd.leaf >= uint32(leaves) || (i > 0 && pd.leaf <= delta[i-1].leaf) {
			d.fail("leaf %d out of order or beyond %d leaves", pd.leaf, leaves)
		}
		delta = append(delta, pd)
	}
	return leaves, delta, d.finish()
}

// pastMembersValue is a past/<e>/members/<k> record of layout 1: the
// signature keys of at most pastChunk leaves, nil for a blank leaf:
//
//	[1, [?bin signature_key, ...]]
func pastMembersValue(keys [][]byte) []byte {
	return envelope(func(e *envEncoder) {
		e.array(2)
		e.uint(pastMembersVersion)
		e.array(len(keys))
		for _, sk := range keys {
			if sk == nil {
				e.nil()
			} else {
				e.bin(sk)
			}
		}
	})
}

// openPastMembers decodes a record written by pastMembersValue.
func openPastMembers(v []byte) ([][]byte, error) {
	d := newEnvDecoder(v)
	d.open(pastMembersVersion, 1)
	n := d.array(pastChunk)
	keys := make([][]byte, 0, n)
	for range n {
		var sk []byte
		if !d.isNil() {
			sk = d.bin(-1)
		}
		keys = append(keys, sk)
	}
	return keys, d.finish()
}

func (g *Group) unlogPast(m *msgEpoch) {
	g.log.delPrefix(GroupScope, Public, pastName(m.epoch, ""))
}

// restorePastMembers returns the members of the past epochs (ascending),
// newest first so that each delta applies to the epoch after it; the
// tree must be restored.
func (rs *restorer) restorePastMembers(g *Group, epochs []uint64) (map[uint64]*msgEpoch, error) {
	out := make(map[uint64]*msgEpoch, len(epochs))
	var next [][]byte
	for i := len(epochs) - 1; i >= 0; i-- {
		e := epochs[i]
		m := &msgEpoch{epoch: e}
		if _, ok := rs.pub[pastName(e, "members/0")]; ok {
			m.fullMembers = true
			for k := 0; ; k++ {
				name := pastName(e, "members/"+strconv.Itoa(k))
				v, ok := rs.pub[name]
				if !ok {
					break
				}
				keys, err := openPastMembers(v)
				if err == nil && len(m.sigKeys) != k*pastChunk {
					err = fmt.Errorf("follows a chunk of fewer than %d leaves", pastChunk)
				}
				if err != nil {
					return nil, corrupt(name, err)
				}
				m.sigKeys = append(m.sigKeys, keys...)
			}
		} else {
			if next == nil {
				next = make([][]byte, g.tree.LeafCount())
				for l := range next {
					next[l] = g.treeSigKey(l)
				}
			}
			leaves := -1
			var delta []pastDelta
			for k := 0; ; k++ {
				name := pastName(e, "delta/"+strconv.Itoa(k))
				v, ok := rs.pub[name]
				if !ok {
					if k == 0 {
						return nil, fmt.Errorf("%w: missing record %q", ErrCorruptState, name)
					}
					break
				}
				n, part, err := openPastDelta(v)
				if err == nil && k > 0 && (n != leaves || len(delta) != k*pastChunk || (len(part) > 0 && part[0].leaf <= delta[len(delta)-1].leaf)) {
					err = fmt.Errorf("does not continue part %d", k-1)
				}
				if err != nil {
					return nil, corrupt(name, err)
				}
				leaves = n
				delta = append(delta, part...)
			}
			// The leaf count sizes a slice: a tree is truncated when its
			// right half is blank (§7.7), so its last member, which is in
			// the next epoch or in the delta, is in its right half.
			last := len(next)
			if len(delta) > 0 {
				last = max(last, int(delta[len(delta)-1].leaf)+1)
			}
			if leaves > 2*last {
				return nil, corrupt(pastName(e, "delta/0"), fmt.Errorf("%d leaves after an epoch of %d", leaves, len(next)))
			}
			m.sigKeys = make([][]byte, leaves)
			copy(m.sigKeys, next)
			for _, d := range delta {
				m.sigKeys[d.leaf] = d.key
			}
		}
		if !slices.ContainsFunc(m.sigKeys, func(k []byte) bool { return k != nil }) && len(m.sigKeys) > 0 {
			return nil, corrupt(pastName(e, "members"), fmt.Errorf("no member"))
		}
		out[e] = m
		next = m.sigKeys
	}
	return out, nil
}
