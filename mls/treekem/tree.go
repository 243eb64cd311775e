package treekem

import (
	"fmt"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// publicTree is what this package needs of the public ratchet tree; the
// exported functions pass a *ratchettree.Tree.
type publicTree interface {
	Suite() *ciphersuite.Suite
	LeafCount() treemath.LeafCount
	Leaf(l treemath.LeafIndex) *wire.LeafNode
	IsBlank(n treemath.NodeIndex) bool
	EncryptionKey(n treemath.NodeIndex) []byte
	AppendResolution(dst []treemath.NodeIndex, n treemath.NodeIndex) []treemath.NodeIndex
	FilteredDirectPath(l treemath.LeafIndex) ([]treemath.NodeIndex, error)
	FilteredCopath(l treemath.LeafIndex) ([]treemath.NodeIndex, error)
	MergePath(sender treemath.LeafIndex, encryptionKeys [][]byte) (leafParentHash []byte, err error)
	SetLeaf(l treemath.LeafIndex, ln *wire.LeafNode) error
	TreeHash() []byte
}

// leafSet is the set of leaves added by the Commit being created or
// processed, which §7.6 excludes from every copath resolution.
type leafSet map[treemath.LeafIndex]struct{}

func newLeafSet(leaves []treemath.LeafIndex) leafSet {
	if len(leaves) == 0 {
		return nil
	}
	s := make(leafSet, len(leaves))
	for _, l := range leaves {
		s[l] = struct{}{}
	}
	return s
}

// has reports whether node n is the leaf of an excluded leaf.
func (s leafSet) has(n treemath.NodeIndex) bool {
	if len(s) == 0 || !treemath.IsLeaf(n) {
		return false
	}
	_, ok := s[treemath.LeafIndex(n/2)]
	return ok
}

// appendResolution appends to dst the resolution of node n without the
// excluded new leaves (§7.6).
func appendResolution(dst []treemath.NodeIndex, t publicTree, n treemath.NodeIndex, exclude leafSet) []treemath.NodeIndex {
	start := len(dst)
	dst = t.AppendResolution(dst, n)
	if len(exclude) == 0 {
		return dst
	}
	out := dst[:start]
	for _, r := range dst[start:] {
		if !exclude.has(r) {
			out = append(out, r)
		}
	}
	return out
}

// pathNodes returns the sender's filtered direct path and the copath child of
// each of its nodes (§4.1.2), checking that they pair up.
func pathNodes(t publicTree, sender treemath.LeafIndex) (fdp, copath []treemath.NodeIndex, err error) {
	if fdp, err = t.FilteredDirectPath(sender); err != nil {
		return nil, nil, err
	}
	if copath, err = t.FilteredCopath(sender); err != nil {
		return nil, nil, err
	}
	if len(copath) != len(fdp) {
		return nil, nil, fmt.Errorf("treekem: internal error: filtered direct path of %d nodes, copath of %d", len(fdp), len(copath))
	}
	return fdp, copath, nil
}
