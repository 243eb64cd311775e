package ratchettree

import (
	"bytes"
	"slices"

	"github.com/mlsengine/mlsengine/mls/treemath"
)

// Parent hashes (§7.9) chain each parent node to the node below it that was
// set in the same UpdatePath, ending at a leaf whose signature covers the
// chain. MergePath computes them for a new path; VerifyParentHashes checks
// a whole tree as a joiner must (§7.9.2, §12.4.3.1).

// VerifyParentHashes checks that every non-blank parent node is
// parent-hash valid (§7.9.2), top down: for each non-blank parent P there
// must be exactly one child C of P (with S the other child) and node D in
// the resolution of C such that
//
//   - the resolution of C without D is exactly P's unmerged leaves below C,
//     and
//   - D's parent_hash is the parent hash of P with original sibling S.
//
// D is a leaf (whose signature covers its parent_hash) or a parent node
// that is checked the same way, so every non-blank parent node lies on
// exactly one chain that ends at a leaf. Errors match ErrInvalidTree and
// ErrParentHashMismatch.
func (t *Tree) VerifyParentHashes() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rehashAll()
	var res []treemath.NodeIndex
	for k, p := range t.parents {
		if p != nil {
			if err := t.parentHashValid(&t.h, uint32(2*k+1), &res); err != nil {
				return err
			}
		}
	}
	return nil
}

// parentHashValid checks that the non-blank parent node x is parent-hash
// valid, as VerifyParentHashes describes. The hash cache must be current;
// nothing is written to it, so calls may run in parallel with their own
// hasher and scratch resolution.
func (t *Tree) parentHashValid(h *hasher, x uint32, res *[]treemath.NodeIndex) error {
	var ph, sib [64]byte
	nh := t.nh
	p := t.parents[x/2]
	valid := 0
	for side := range 2 {
		c, s := left(x), right(x)
		if side == 1 {
			c, s = s, c
		}
		uc := unmergedBelow(p.UnmergedLeaves, c)
		*res = t.appendResolution((*res)[:0], c)
		var d uint32
		candidates, matched := 0, 0
		for _, r := range *res {
			if r%2 == 0 {
				if _, found := slices.BinarySearch(uc, uint32(r)/2); found {
					matched++
					continue
				}
			}
			d = uint32(r)
			candidates++
		}
		if candidates != 1 || matched != len(uc) {
			continue
		}
		got := t.parentHashField(d)
		if len(got) != nh {
			continue
		}
		t.hashWithout(h, s, unmergedBelow(p.UnmergedLeaves, s), sib[:nh])
		h.parentHash(ph[:nh], p.EncryptionKey, p.ParentHash, sib[:nh])
		if bytes.Equal(got, ph[:nh]) {
			valid++
		}
	}
	switch valid {
	case 0:
		return invalidf(ErrParentHashMismatch, "parent node %d is not parent-hash valid", x)
	case 2:
		return invalidf(ErrParentHashMismatch, "parent node %d is on two parent-hash chains", x)
	}
	return nil
}

// unmergedBelow returns the part of the sorted list unmerged that lies
// under node x.
func unmergedBelow(unmerged []uint32, x uint32) []uint32 {
	lo, hi := leafSpan(x)
	i, _ := slices.BinarySearch(unmerged, lo)
	j, _ := slices.BinarySearch(unmerged, hi+1)
	return unmerged[i:j]
}

// parentHashField returns the parent_hash of node x: that of a parent
// node, or that of a leaf whose leaf_node_source is commit (other leaves
// have none).
func (t *Tree) parentHashField(x uint32) []byte {
	if x%2 == 1 {
		return t.parents[x/2].ParentHash
	}
	v, ok := viewLeaf(t.leaves[x/2])
	if !ok {
		return nil
	}
	return v.parentHash
}

// ParentHash returns the parent hash of parent node p with copath child s
// (§7.9) in the current tree: the hash of p's encryption key, its
// parent_hash and the original tree hash of s, computed with p's unmerged
// leaves blanked. It is nil unless p is a non-blank parent and s one of its
// children.
func (t *Tree) ParentHash(p, s treemath.NodeIndex) []byte {
	x, y := uint32(p), uint32(s)
	if x%2 == 0 || x >= width(t.n) || t.parents[x/2] == nil || (y != left(x) && y != right(x)) {
		return nil
	}
	node := t.parents[x/2]
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rehashAll()
	var sib [64]byte
	out := make([]byte, t.nh)
	t.hashWithout(&t.h, y, unmergedBelow(node.UnmergedLeaves, y), sib[:t.nh])
	t.h.parentHash(out, node.EncryptionKey, node.ParentHash, sib[:t.nh])
	return out
}
