package group

import (
	"bytes"
	"cmp"
	"fmt"
	"github.com/mlsengine/mlsengine/mls/persist"
	"github.com/mlsengine/mlsengine/storage"
	"math"
	"slices"
	"strconv"

	"github.com/mlsengine/mlsengine/mls/ratchettree"
	"github.com/mlsengine/mlsengine/mls/treemath"
)

// The members of retained past epochs: the signature keys that verify
// their late messages (§6.1).
//
// Layout 2 keeps each past epoch's keys, in memory as in storage, as a
// delta against the epoch after it (the next retained epoch, or the tree
// of the current one): past/<e>/delta/<k>, the leaves whose signature key
// differed, pastChunk of them a record, with the epoch's leaf count. An
// epoch change costs what its commit changed, not the member list, and a
// load reads the deltas as they are. Layout 1 wrote the whole list,
// past/<e>/members/<k>; such epochs load as they are, and Records keeps
// writing them so until they age out.

// pastDeltaVersion is the envelope version of past/<e>/delta/<k>.
const pastDeltaVersion = 1

// pastMembers are the members of a retained past epoch, as they are
// stored: the leaves whose signature key differs in the epoch after it,
// so that retiring an epoch costs what its commit changed, and a lookup
// walks the newer epochs' deltas down to the tree.
type pastMembers struct {
	leaves int               // the epoch's leaf count
	delta  map[uint32][]byte // leaf -> key (nil: blank) where the next epoch differs
	full   [][]byte          // layout 1: every leaf's key, instead of delta
}

// pastSigKey returns the signature key of leaf l in the retained past
// epoch g.past[i], nil if blank or beyond its tree.
func (g *Group) pastSigKey(i int, l uint32) []byte {
	for _, m := range g.past[i:] {
		pm := m.members
		switch {
		case uint64(l) >= uint64(pm.leaves):
			// Epoch i had the same key for l as this one, which has no
			// leaf l.
			return nil
		case pm.full != nil:
			return pm.full[l]
		}
		if k, ok := pm.delta[l]; ok {
			return k
		}
	}
	return g.treeSigKey(l)
}

// treeSigKey returns the signature key of leaf l of the group's tree, nil
// if blank or beyond it.
func (g *Group) treeSigKey(l uint32) []byte {
	if uint64(l) >= uint64(g.tree.LeafCount()) {
		return nil
	}
	return g.tree.SignatureKey(treemath.LeafIndex(l))
}

// retiredMembers are the members of the epoch the tree held at ck, taken
// after the tree moved to the next epoch: the prior keys of the leaves it
// changed, where they differ, and its leaf count then.
func (g *Group) retiredMembers(ck ratchettree.Checkpoint, leaves int) *pastMembers {
	pm := &pastMembers{leaves: leaves, delta: map[uint32][]byte{}}
	for l, k := range g.tree.PriorSignatureKeys(ck) {
		if int(l) < leaves && !bytes.Equal(k, g.treeSigKey(l)) {
			pm.delta[l] = k
		}
	}
	return pm
}

// logPast logs the public records of a retained past epoch m: its context
// and its members.
func (g *Group) logPast(m *msgEpoch) {
	g.log.own(groupScope, storage.Public, pastName(m.epoch, "context"), m.ctx.Bytes())
	pm := m.members
	if pm.full != nil {
		for k := 0; k*pastChunk < len(pm.full); k++ {
			keys := pm.full[k*pastChunk : min((k+1)*pastChunk, len(pm.full))]
			g.log.own(groupScope, storage.Public, pastName(m.epoch, "members/"+strconv.Itoa(k)), pastMembersValue(keys))
		}
		return
	}
	delta := make([]pastDelta, 0, len(pm.delta))
	for l, k := range pm.delta {
		delta = append(delta, pastDelta{leaf: l, key: k})
	}
	slices.SortFunc(delta, func(a, b pastDelta) int { return cmp.Compare(a.leaf, b.leaf) })
	for k := 0; k == 0 || k*pastChunk < len(delta); k++ {
		part := delta[min(k*pastChunk, len(delta)):min((k+1)*pastChunk, len(delta))]
		g.log.own(groupScope, storage.Public, pastName(m.epoch, "delta/"+strconv.Itoa(k)), pastDeltaValue(pm.leaves, part))
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
	return persist.Envelope(func(e *persist.Encoder) {
		e.Array(3)
		e.Uint(pastDeltaVersion)
		e.Uint(uint64(leaves))
		e.Array(2 * len(delta))
		for _, d := range delta {
			e.Uint(uint64(d.leaf))
			if d.key == nil {
				e.Nil()
			} else {
				e.Bin(d.key)
			}
		}
	})
}

// openPastDelta decodes a record written by pastDeltaValue.
func openPastDelta(v []byte) (leaves int, delta []pastDelta, err error) {
	d := persist.NewDecoder(v)
	d.Open(pastDeltaVersion, 2)
	leaves = int(d.Uint(math.MaxUint32))
	n := d.Array(2 * pastChunk)
	if n%2 != 0 {
		d.Fail("odd delta array")
	}
	for i := 0; i < n/2 && d.Err() == nil; i++ {
		pd := pastDelta{leaf: uint32(d.Uint(math.MaxUint32))}
		if !d.IsNil() {
			pd.key = d.Bin(-1)
		}
		if pd.leaf >= uint32(leaves) || (i > 0 && pd.leaf <= delta[i-1].leaf) {
			d.Fail("leaf %d out of order or beyond %d leaves", pd.leaf, leaves)
		}
		delta = append(delta, pd)
	}
	return leaves, delta, d.Finish()
}

// pastMembersValue is a past/<e>/members/<k> record of layout 1: the
// signature keys of at most pastChunk leaves, nil for a blank leaf:
//
//	[1, [?bin signature_key, ...]]
func pastMembersValue(keys [][]byte) []byte {
	return persist.Envelope(func(e *persist.Encoder) {
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

// openPastMembers decodes a record written by pastMembersValue.
func openPastMembers(v []byte) ([][]byte, error) {
	d := persist.NewDecoder(v)
	d.Open(pastMembersVersion, 1)
	n := d.Array(pastChunk)
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

func (g *Group) unlogPast(m *msgEpoch) {
	g.log.delPrefix(groupScope, storage.Public, pastName(m.epoch, ""))
}

// restorePastMembers reads the members of past epoch e.
func (rs *restorer) restorePastMembers(e uint64) (*pastMembers, error) {
	pm := &pastMembers{}
	if _, ok := rs.pub[pastName(e, "members/0")]; ok {
		for k := 0; ; k++ {
			name := pastName(e, "members/"+strconv.Itoa(k))
			v, ok := rs.pub[name]
			if !ok {
				break
			}
			keys, err := openPastMembers(v)
			if err == nil && len(pm.full) != k*pastChunk {
				err = fmt.Errorf("follows a chunk of fewer than %d leaves", pastChunk)
			}
			if err != nil {
				return nil, corrupt(name, err)
			}
			pm.full = append(pm.full, keys...)
		}
		pm.leaves = len(pm.full)
		return pm, nil
	}
	pm.delta = map[uint32][]byte{}
	for k := 0; ; k++ {
		name := pastName(e, "delta/"+strconv.Itoa(k))
		v, ok := rs.pub[name]
		if !ok {
			if k == 0 {
				return nil, fmt.Errorf("%w: missing record %q", ErrCorruptState, name)
			}
			return pm, nil
		}
		n, part, err := openPastDelta(v)
		if err == nil && k > 0 && (n != pm.leaves || len(pm.delta) != k*pastChunk || (len(part) > 0 && pm.delta[part[0].leaf] != nil)) {
			err = fmt.Errorf("does not continue part %d", k-1)
		}
		if err != nil {
			return nil, corrupt(name, err)
		}
		pm.leaves = n
		for _, d := range part {
			if _, dup := pm.delta[d.leaf]; dup {
				return nil, corrupt(name, fmt.Errorf("leaf %d twice", d.leaf))
			}
			pm.delta[d.leaf] = d.key
		}
	}
}
