package group

import (
	"bytes"
	"cmp"
	"fmt"
	"github.com/mlsengine/mlsengine/mls/persist"
	"github.com/mlsengine/mlsengine/storage"
	"slices"

	"github.com/mlsengine/mlsengine/mls/ratchettree"
	"github.com/mlsengine/mlsengine/mls/treemath"
)

// The members of retained past epochs: the signature keys that verify
// their late messages (§6.1).
//
// They are kept in memory as they are stored (layouts: mls/persist/past.go).

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
	g.log.own(groupScope, storage.Public, persist.PastContextName(m.epoch), m.ctx.Bytes())
	pm := m.members
	if pm.full != nil {
		for k := 0; k*persist.PastChunk < len(pm.full); k++ {
			keys := pm.full[k*persist.PastChunk : min((k+1)*persist.PastChunk, len(pm.full))]
			g.log.own(groupScope, storage.Public, persist.PastMembersName(m.epoch, k), persist.PastMembersValue(keys))
		}
		return
	}
	delta := make([]persist.PastDelta, 0, len(pm.delta))
	for l, k := range pm.delta {
		delta = append(delta, persist.PastDelta{Leaf: l, Key: k})
	}
	slices.SortFunc(delta, func(a, b persist.PastDelta) int { return cmp.Compare(a.Leaf, b.Leaf) })
	for k := 0; k == 0 || k*persist.PastChunk < len(delta); k++ {
		part := delta[min(k*persist.PastChunk, len(delta)):min((k+1)*persist.PastChunk, len(delta))]
		g.log.own(groupScope, storage.Public, persist.PastDeltaName(m.epoch, k), persist.PastDeltaValue(pm.leaves, part))
	}
}

func (g *Group) unlogPast(m *msgEpoch) {
	g.log.delPrefix(groupScope, storage.Public, persist.PastPrefix(m.epoch))
}

// restorePastMembers reads the members of past epoch e.
func (rs *restorer) restorePastMembers(e uint64) (*pastMembers, error) {
	pm := &pastMembers{}
	if _, ok := rs.pub[persist.PastMembersName(e, 0)]; ok {
		for k := 0; ; k++ {
			name := persist.PastMembersName(e, k)
			v, ok := rs.pub[name]
			if !ok {
				break
			}
			keys, err := persist.OpenPastMembers(v)
			if err == nil && len(pm.full) != k*persist.PastChunk {
				err = fmt.Errorf("follows a chunk of fewer than %d leaves", persist.PastChunk)
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
		name := persist.PastDeltaName(e, k)
		v, ok := rs.pub[name]
		if !ok {
			if k == 0 {
				return nil, fmt.Errorf("%w: missing record %q", ErrCorruptState, name)
			}
			return pm, nil
		}
		n, part, err := persist.OpenPastDelta(v)
		if err == nil && k > 0 && (n != pm.leaves || len(pm.delta) != k*persist.PastChunk || (len(part) > 0 && pm.delta[part[0].Leaf] != nil)) {
			err = fmt.Errorf("does not continue part %d", k-1)
		}
		if err != nil {
			return nil, corrupt(name, err)
		}
		pm.leaves = n
		for _, d := range part {
			if _, dup := pm.delta[d.Leaf]; dup {
				return nil, corrupt(name, fmt.Errorf("leaf %d twice", d.Leaf))
			}
			pm.delta[d.Leaf] = d.Key
		}
	}
}
