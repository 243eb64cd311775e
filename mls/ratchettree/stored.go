package ratchettree

import (
	"math/bits"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// StoredTree is a tree as a storage layer kept it: nodes and, where known,
// their tree hashes, so that rebuilding it need neither decode every leaf
// nor rehash the tree.
type StoredTree struct {
	// LeafCount is the number of leaves, a power of two.
	LeafCount uint32
	// Leaves holds LeafCount LeafNode encodings, nil for a blank leaf. They
	// are checked only for the position of their keys; the tree takes the
	// slice and keeps the encodings.
	Leaves [][]byte
	// Parents holds the parent node 2k+1 at k, nil when blank; LeafCount-1
	// entries (or LeafCount, the last unused). The tree takes the slice and
	// keeps the nodes.
	Parents []*wire.ParentNode
	// Hashes holds the tree hash of node x at [x*Nh : (x+1)*Nh] for every
	// node x with Known(x); other bytes are ignored. Its length is
	// (2*LeafCount-1)*Nh; the tree takes it as its hash cache.
	Hashes []byte
	// Known reports whether Hashes holds node x's hash. Nodes whose hash is
	// unknown are hashed when a hash that depends on them is next asked for,
	// and so are their ancestors, but for those in a blank subtree under a
	// known node, which are hashed only if asked for. So a store can leave
	// out blank subtrees whose root's hash it keeps. Nil means none is known.
	Known func(x uint32) bool
}

// FromStored rebuilds a tree from what a storage layer kept, with the
// structural checks of FromWire but no signature, parent-hash or key
// checks, and without hashing nodes whose hash is known: the caller trusts
// its storage, and compares TreeHash with the group context's tree_hash to
// catch a store that lost track of a change.
func FromStored(suite *ciphersuite.Suite, st *StoredTree) (*Tree, error) {
	if err := checkSuite(suite); err != nil {
		return nil, err
	}
	n := st.LeafCount
	if n == 0 || bits.OnesCount32(n) != 1 || uint64(n) > uint64(maxLeaves) {
		return nil, invalidf(nil, "stored leaf count %d is not a power of two", n)
	}
	if uint32(len(st.Leaves)) != n || (uint32(len(st.Parents)) != n && uint32(len(st.Parents)) != n-1) {
		return nil, invalidf(nil, "stored tree of %d leaves with %d leaves and %d parent nodes", n, len(st.Leaves), len(st.Parents))
	}
	w := width(n)
	hashes := st.Hashes
	if st.Known == nil {
		hashes = make([]byte, int(w)*suite.HashLen())
	} else if len(hashes) != int(w)*suite.HashLen() {
		return nil, invalidf(nil, "stored hashes of %d bytes for %d nodes", len(st.Hashes), w)
	}
	parents := st.Parents
	if uint32(len(parents)) == n-1 {
		parents = append(parents, nil)
	}
	parents[n-1] = nil // the unused slot
	t := newTreeFrom(suite, n, st.Leaves, parents, hashes)
	for l, enc := range t.leaves {
		if enc == nil {
			continue
		}
		if ek, sk := leafKeys(enc); ek == nil || sk == nil {
			return nil, invalidf(nil, "stored leaf %d is not a LeafNode", l)
		}
		t.filled.set(2 * uint32(l))
	}
	for k, p := range t.parents {
		if p != nil {
			t.filled.set(uint32(2*k + 1))
		}
	}
	if n > 1 && !t.filled.any(n, width(n)-1) {
		// The right half is blank: the tree should have been truncated
		// (§7.7).
		return nil, invalidf(nil, "stored tree of %d leaves has a blank right half", n)
	}
	if err := t.checkUnmergedPlacement(); err != nil {
		return nil, err
	}
	if st.Known == nil {
		return t, nil
	}
	// A node is clean when its hash is known and, unless its subtree is
	// blank, its children are clean: rehashWith stops at a clean node, and
	// only inside a blank subtree may it leave an unknown hash behind.
	// Levels are visited bottom up, so children are decided first.
	clean := 0
	for lv := uint(0); (uint32(1)<<lv)-1 < w; lv++ {
		for x := uint32(1)<<lv - 1; x < w; x += uint32(1) << (lv + 1) {
			if !st.Known(x) || (lv > 0 && (t.dirty.get(left(x)) || t.dirty.get(right(x))) && !t.resolutionEmpty(x)) {
				continue
			}
			t.dirty.clear(x)
			clean++
		}
	}
	t.dirtyHint = int(w) - clean
	return t, nil
}

// maxLeaves bounds a stored leaf count so that the node arrays it sizes
// stay addressable by uint32 node indexes.
const maxLeaves = 1 << 31
