package ratchettree

import (
	"fmt"

	"github.com/mlsengine/mlsengine/mls/treemath"
)

// Resolution returns the resolution of node n (§4.1.1): the non-blank node
// itself followed by its unmerged leaves, or for a blank parent node the
// resolutions of its children, left first. It is empty for a blank leaf
// and for an index beyond the tree.
func (t *Tree) Resolution(n treemath.NodeIndex) []treemath.NodeIndex {
	return t.AppendResolution(nil, n)
}

// AppendResolution appends the resolution of n to dst, as Resolution
// returns it, and allocates only if dst is too small. Blank subtrees are
// skipped in O(1) words each, so the cost is proportional to the length of
// the result, not to the size of the subtree.
func (t *Tree) AppendResolution(dst []treemath.NodeIndex, n treemath.NodeIndex) []treemath.NodeIndex {
	if uint32(n) >= width(t.n) {
		return dst
	}
	return t.appendResolution(dst, uint32(n))
}

func (t *Tree) appendResolution(dst []treemath.NodeIndex, x uint32) []treemath.NodeIndex {
	if t.filled.get(x) {
		dst = append(dst, treemath.NodeIndex(x))
		if x%2 == 1 {
			for _, l := range t.parents[x/2].UnmergedLeaves {
				dst = append(dst, treemath.NodeIndex(2*l))
			}
		}
		return dst
	}
	if x%2 == 0 || !t.filled.any(span(x)) {
		return dst
	}
	dst = t.appendResolution(dst, left(x))
	return t.appendResolution(dst, right(x))
}

// resolutionEmpty reports whether the resolution of x is empty, that is
// whether its whole subtree is blank (unmerged leaves are non-blank leaves
// of the subtree).
func (t *Tree) resolutionEmpty(x uint32) bool { return !t.filled.any(span(x)) }

// SubtreeBlank reports whether node n and every node below it are blank
// (its resolution is empty); a node beyond the tree counts as blank.
func (t *Tree) SubtreeBlank(n treemath.NodeIndex) bool {
	return uint32(n) >= width(t.n) || t.resolutionEmpty(uint32(n))
}

// filteredPath appends to path the filtered direct path of leaf l (§4.1.2)
// and to copath the copath child of each of its nodes.
func (t *Tree) filteredPath(l uint32, path, copath []uint32) ([]uint32, []uint32) {
	root := rootOf(t.n)
	for x := 2 * l; x != root; {
		p := parentOf(x)
		s := right(p)
		if x > p {
			s = left(p)
		}
		if !t.resolutionEmpty(s) {
			path = append(path, p)
			copath = append(copath, s)
		}
		x = p
	}
	return path, copath
}

// FilteredDirectPath returns the filtered direct path of leaf l (§4.1.2):
// its direct path without the nodes whose child on l's copath has an empty
// resolution, from the leaf's parent up to the root.
func (t *Tree) FilteredDirectPath(l treemath.LeafIndex) ([]treemath.NodeIndex, error) {
	if uint32(l) >= t.n {
		return nil, fmt.Errorf("%w: leaf %d in a tree of %d leaves", ErrIndexOutOfRange, l, t.n)
	}
	var pb, cb [32]uint32
	path, _ := t.filteredPath(uint32(l), pb[:0], cb[:0])
	return toNodeIndexes(path), nil
}

// FilteredCopath returns, for each node of FilteredDirectPath(l) in the
// same order, its child on l's copath: the node whose resolution the path
// secret is encrypted to (§7.6).
func (t *Tree) FilteredCopath(l treemath.LeafIndex) ([]treemath.NodeIndex, error) {
	if uint32(l) >= t.n {
		return nil, fmt.Errorf("%w: leaf %d in a tree of %d leaves", ErrIndexOutOfRange, l, t.n)
	}
	var pb, cb [32]uint32
	_, copath := t.filteredPath(uint32(l), pb[:0], cb[:0])
	return toNodeIndexes(copath), nil
}

func toNodeIndexes(xs []uint32) []treemath.NodeIndex {
	out := make([]treemath.NodeIndex, len(xs))
	for i, x := range xs {
		out[i] = treemath.NodeIndex(x)
	}
	return out
}
