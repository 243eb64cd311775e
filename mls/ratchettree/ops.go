package ratchettree

import (
	"fmt"
	"slices"

	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// AddLeaf adds a member (§12.1.1, §7.7): the new leaf takes the leftmost
// blank leaf, or the tree is extended to the right (doubling) and it takes
// the first new leaf; its index is then added to the unmerged_leaves of
// every non-blank parent node on its direct path. ln is stored by its
// encoding (the received bytes for a decoded LeafNode).
func (t *Tree) AddLeaf(ln *wire.LeafNode) (treemath.LeafIndex, error) {
	enc, err := leafEncoding(ln)
	if err != nil {
		return 0, err
	}
	l, ok := t.firstBlankLeaf()
	if !ok {
		if t.n >= uint32(treemath.MaxLeafCount) {
			return 0, ErrTreeFull
		}
		l = t.n
		t.setLeafCount(2 * t.n)
	}
	root := rootOf(t.n)
	for x := 2 * l; x != root; {
		x = parentOf(x)
		p := t.parents[x/2]
		if p == nil {
			continue
		}
		// unmerged_leaves stays sorted (§7.1): the new leaf is usually
		// the largest, but need not be.
		i, _ := slices.BinarySearch(p.UnmergedLeaves, l)
		np := &wire.ParentNode{
			EncryptionKey:  p.EncryptionKey,
			ParentHash:     p.ParentHash,
			UnmergedLeaves: slices.Insert(slices.Clip(p.UnmergedLeaves), i, l),
		}
		t.setParent(x, np)
	}
	t.setLeaf(l, enc)
	return treemath.LeafIndex(l), nil
}

// firstBlankLeaf returns the leftmost blank leaf.
func (t *Tree) firstBlankLeaf() (uint32, bool) {
	const evenBits = 0x5555555555555555
	w := width(t.n)
	for i, word := range t.filled[:(w+63)/64] {
		free := ^word & evenBits
		if free == 0 {
			continue
		}
		x := uint32(i)*64 + uint32(trailingZeros64(free))
		if x >= w {
			return 0, false
		}
		return x / 2, true
	}
	return 0, false
}

// checkMember checks that l is a non-blank leaf of the tree.
func (t *Tree) checkMember(l treemath.LeafIndex) error {
	if uint32(l) >= t.n {
		return fmt.Errorf("%w: leaf %d in a tree of %d leaves", ErrIndexOutOfRange, l, t.n)
	}
	if t.leaves[l] == nil {
		return fmt.Errorf("%w: leaf %d", ErrBlankLeaf, l)
	}
	return nil
}

// blankDirectPath blanks every parent node above leaf l.
func (t *Tree) blankDirectPath(l uint32) {
	root := rootOf(t.n)
	for x := 2 * l; x != root; {
		x = parentOf(x)
		t.setParent(x, nil)
	}
}

// UpdateLeaf applies an Update (§12.1.2): the member at leaf l is replaced
// by ln and the parent nodes above it are blanked. Checking ln (§7.3) is
// up to the caller; see ValidateLeafNode and CheckNewLeaf.
func (t *Tree) UpdateLeaf(l treemath.LeafIndex, ln *wire.LeafNode) error {
	if err := t.checkMember(l); err != nil {
		return err
	}
	enc, err := leafEncoding(ln)
	if err != nil {
		return err
	}
	t.setLeaf(uint32(l), enc)
	t.blankDirectPath(uint32(l))
	return nil
}

// RemoveLeaf applies a Remove (§12.1.3): leaf l and the parent nodes above
// it are blanked, then the tree is truncated (§7.7) while the right half
// of its leaves is blank.
func (t *Tree) RemoveLeaf(l treemath.LeafIndex) error {
	if err := t.checkMember(l); err != nil {
		return err
	}
	t.setLeaf(uint32(l), nil)
	t.blankDirectPath(uint32(l))
	t.truncate()
	return nil
}

// truncate halves the tree while no leaf of its right half is non-blank
// (§12.1.3); nodes dropped with the right subtree are blanked first, so
// that the change is logged.
func (t *Tree) truncate() {
	for t.n > 1 {
		half := t.n / 2
		root := rootOf(t.n)
		if t.filled.any(root+1, width(t.n)-1) {
			for l := half; l < t.n; l++ {
				if t.leaves[l] != nil {
					return
				}
			}
		}
		// Only parent nodes, if anything, are left at the root and in the
		// right subtree: blank them.
		for x, ok := t.filled.next(root, width(t.n)-1); ok; x, ok = t.filled.next(x+1, width(t.n)-1) {
			t.setParent(x, nil)
		}
		t.setLeafCount(half)
	}
}

// SetLeaf stores ln at leaf l as it is, without touching any other node; a
// nil ln blanks the leaf. It serves the committer's and receivers' last
// step of merging an UpdatePath (§12.4.2), after MergePath, and tests.
func (t *Tree) SetLeaf(l treemath.LeafIndex, ln *wire.LeafNode) error {
	if uint32(l) >= t.n {
		return fmt.Errorf("%w: leaf %d in a tree of %d leaves", ErrIndexOutOfRange, l, t.n)
	}
	var enc []byte
	if ln != nil {
		var err error
		if enc, err = leafEncoding(ln); err != nil {
			return err
		}
	}
	t.setLeaf(uint32(l), enc)
	return nil
}

// MergePath applies the public part of an UpdatePath sent by the member at
// leaf sender (§7.5, §7.9, §12.4.2): it blanks every parent node on the
// sender's direct path, sets each node of the filtered direct path to a
// ParentNode with the matching key of encryptionKeys and no unmerged
// leaves, computes the parent hashes from the root down (the topmost
// node's parent_hash is empty) and stores them in the nodes. It returns the
// parent_hash the sender's new LeafNode must carry: the committer puts it in
// the leaf it signs, a receiver compares it with the received leaf's. The
// caller then stores the leaf with SetLeaf.
//
// len(encryptionKeys) must equal the length of the filtered direct path
// (ErrPathLength); nothing is changed on error. The keys are copied.
func (t *Tree) MergePath(sender treemath.LeafIndex, encryptionKeys [][]byte) (leafParentHash []byte, err error) {
	if uint32(sender) >= t.n {
		return nil, fmt.Errorf("%w: leaf %d in a tree of %d leaves", ErrIndexOutOfRange, sender, t.n)
	}
	// The filtered direct path depends only on the copath subtrees, which
	// blanking the direct path leaves alone.
	var pathBuf, copathBuf [32]uint32
	path, copath := t.filteredPath(uint32(sender), pathBuf[:0], copathBuf[:0])
	if len(encryptionKeys) != len(path) {
		return nil, fmt.Errorf("%w: %d keys for %d nodes", ErrPathLength, len(encryptionKeys), len(path))
	}
	// One allocation for the nodes and one for their keys and hashes.
	nodes := make([]wire.ParentNode, len(path))
	size := len(path) * t.nh
	for _, k := range encryptionKeys {
		size += len(k)
	}
	buf := make([]byte, 0, size)
	t.mu.Lock()
	ph := buf[:0:0] // the topmost node's parent_hash is empty
	for i := len(path) - 1; i >= 0; i-- {
		t.rehash(copath[i])
		buf = append(buf, encryptionKeys[i]...)
		key := buf[len(buf)-len(encryptionKeys[i]):]
		nodes[i] = wire.ParentNode{EncryptionKey: key[:len(key):len(key)], ParentHash: ph}
		buf = append(buf, make([]byte, t.nh)...)
		next := buf[len(buf)-t.nh : len(buf) : len(buf)]
		t.h.parentHash(next, nodes[i].EncryptionKey, ph, t.cached(copath[i]))
		ph = next
	}
	t.mu.Unlock()
	t.blankDirectPath(uint32(sender))
	for i, x := range path {
		t.setParent(x, &nodes[i])
	}
	return slices.Clone(ph), nil
}
