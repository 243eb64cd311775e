// Package treemath computes node relationships in the array representation
// of an MLS ratchet tree (RFC 9420 Appendix C).
//
// Leaves sit at even node indices (leaf i at node 2i) and parent nodes at odd
// ones. Every tree in RFC 9420 is a perfect binary tree (§4.1), so the
// relations here accept only leaf counts that are powers of two, from 1 to
// MaxLeafCount. FullLeafCount rounds a number of members up to such a count;
// NodeWidth alone accepts any count, as Appendix C defines it for any n.
//
// Every function checks its inputs and returns an error instead of
// panicking: ErrInvalidLeafCount, ErrOutOfRange for an index outside the
// tree, ErrNoChildren for the children of a leaf, ErrNoParent for the parent
// or sibling of the root, ErrNotLeaf for a parent node given as a leaf. The
// errors are sentinels, so errors.Is works and no call allocates except
// DirectPath and Copath, which return a new slice (AppendDirectPath and
// AppendCopath reuse the caller's). Each call is O(log n) or better.
//
//	n, _ := treemath.FullLeafCount(5)          // 8
//	x, _ := treemath.LeafToNode(2, n)          // node 4
//	path, _ := treemath.DirectPath(x, n)       // [5 3 7]
//	copath, _ := treemath.Copath(x, n)         // [6 1 11]
package treemath

import (
	"errors"
	"math/bits"
)

// NodeIndex is the index of a node in the array representation of a tree.
type NodeIndex uint32

// LeafIndex is the index of a leaf among the leaves of a tree, counted from
// the left; leaf i is node 2i.
type LeafIndex uint32

// LeafCount is the number of leaves of a tree. The relations of this package
// require a power of two no larger than MaxLeafCount.
type LeafCount uint32

// MaxLeafCount is the largest leaf count whose nodes all have uint32
// indices: a tree of 2^31 leaves has 2^32-1 nodes.
const MaxLeafCount LeafCount = 1 << 31

// Errors returned for operations that are undefined on their input.
var (
	// ErrInvalidLeafCount is returned for a leaf count that is zero, not a
	// power of two, or larger than MaxLeafCount.
	ErrInvalidLeafCount = errors.New("treemath: leaf count is not a power of two between 1 and 2^31")
	// ErrOutOfRange is returned for a node index not below the tree's node
	// width, or a leaf index not below its leaf count.
	ErrOutOfRange = errors.New("treemath: index out of range")
	// ErrNoChildren is returned for the left or right child of a leaf.
	ErrNoChildren = errors.New("treemath: a leaf has no children")
	// ErrNoParent is returned for the parent or sibling of the root.
	ErrNoParent = errors.New("treemath: the root has no parent")
	// ErrNotLeaf is returned when a parent node is given where a leaf is
	// required.
	ErrNotLeaf = errors.New("treemath: node is not a leaf")
)

// Valid reports whether n is a leaf count the relations accept: a power of
// two between 1 and MaxLeafCount.
func (n LeafCount) Valid() bool {
	return n != 0 && n&(n-1) == 0 && n <= MaxLeafCount
}

// Width is the number of nodes of a tree with n leaves; see NodeWidth.
func (n LeafCount) Width() (uint32, error) { return NodeWidth(n) }

// FullLeafCount returns the leaf count of the smallest perfect tree that has
// at least members leaves (1 for 0 members), which is how wide a ratchet
// tree with members leaves is (RFC 9420 §7.7: trees grow by doubling and
// shrink by halving).
func FullLeafCount(members uint32) (LeafCount, error) {
	if members <= 1 {
		return 1, nil
	}
	if members > uint32(MaxLeafCount) {
		return 0, ErrInvalidLeafCount
	}
	return LeafCount(1) << bits.Len32(members-1), nil
}

// NodeWidth returns node_width(n) = 2(n-1)+1, the number of nodes needed to
// represent a tree with n leaves (Appendix C), and 0 for n = 0. Unlike the
// relations it accepts any n up to MaxLeafCount.
func NodeWidth(n LeafCount) (uint32, error) {
	if n > MaxLeafCount {
		return 0, ErrInvalidLeafCount
	}
	if n == 0 {
		return 0, nil
	}
	return 2*(uint32(n)-1) + 1, nil
}

// checkNode validates n and x < NodeWidth(n).
func checkNode(x NodeIndex, n LeafCount) error {
	if !n.Valid() {
		return ErrInvalidLeafCount
	}
	if uint64(x) >= 2*uint64(n)-1 {
		return ErrOutOfRange
	}
	return nil
}

// Level returns the level of node x: 0 for leaves, 1 for their parents, and
// so on (Appendix C level). It is the number of trailing one bits of x and
// is defined for every index.
func Level(x NodeIndex) uint {
	return uint(bits.TrailingZeros32(^uint32(x)))
}

// IsLeaf reports whether x is a leaf (even) node.
func IsLeaf(x NodeIndex) bool { return x&1 == 0 }

// Root returns the index of the root of a tree with n leaves (Appendix C
// root). For a perfect tree this is n-1.
func Root(n LeafCount) (NodeIndex, error) {
	if !n.Valid() {
		return 0, ErrInvalidLeafCount
	}
	return root(n), nil
}

func root(n LeafCount) NodeIndex {
	w := 2*(uint32(n)-1) + 1
	return NodeIndex(uint32(1)<<(bits.Len32(w)-1) - 1)
}

// Left returns the left child of parent node x (Appendix C left).
func Left(x NodeIndex, n LeafCount) (NodeIndex, error) {
	if err := checkNode(x, n); err != nil {
		return 0, err
	}
	k := Level(x)
	if k == 0 {
		return 0, ErrNoChildren
	}
	return x ^ NodeIndex(1)<<(k-1), nil
}

// Right returns the right child of parent node x (Appendix C right).
func Right(x NodeIndex, n LeafCount) (NodeIndex, error) {
	if err := checkNode(x, n); err != nil {
		return 0, err
	}
	k := Level(x)
	if k == 0 {
		return 0, ErrNoChildren
	}
	return x ^ NodeIndex(3)<<(k-1), nil
}

// Parent returns the parent of node x (Appendix C parent).
func Parent(x NodeIndex, n LeafCount) (NodeIndex, error) {
	if err := checkNode(x, n); err != nil {
		return 0, err
	}
	if x == root(n) {
		return 0, ErrNoParent
	}
	return parent(x), nil
}

// parent is Appendix C's parent step for a non-root node of a perfect tree,
// whose level is then at most 30, so no shift overflows.
func parent(x NodeIndex) NodeIndex {
	k := Level(x)
	b := (x >> (k + 1)) & 1
	return (x | 1<<k) ^ (b << (k + 1))
}

// Sibling returns the other child of x's parent (Appendix C sibling).
func Sibling(x NodeIndex, n LeafCount) (NodeIndex, error) {
	p, err := Parent(x, n)
	if err != nil {
		return 0, err
	}
	return sibling(x, p), nil
}

// sibling returns the other child of p, given its child x.
func sibling(x, p NodeIndex) NodeIndex {
	k := Level(p)
	if x < p {
		return p ^ 3<<(k-1) // right(p)
	}
	return p ^ 1<<(k-1) // left(p)
}

// depth is the number of edges from x to the root of a perfect tree with n
// leaves: the root's level minus x's level.
func depth(x NodeIndex, n LeafCount) int {
	return bits.TrailingZeros32(uint32(n)) - int(Level(x))
}

// DirectPath returns the direct path of x ordered from x's parent to the
// root, and an empty slice for the root (RFC 9420 §4.1.2, Appendix C).
func DirectPath(x NodeIndex, n LeafCount) ([]NodeIndex, error) {
	if err := checkNode(x, n); err != nil {
		return nil, err
	}
	return AppendDirectPath(make([]NodeIndex, 0, depth(x, n)), x, n)
}

// AppendDirectPath appends the direct path of x to dst, as DirectPath does,
// and returns the extended slice; it allocates only if dst is too small.
func AppendDirectPath(dst []NodeIndex, x NodeIndex, n LeafCount) ([]NodeIndex, error) {
	if err := checkNode(x, n); err != nil {
		return dst, err
	}
	r := root(n)
	for x != r {
		x = parent(x)
		dst = append(dst, x)
	}
	return dst, nil
}

// Copath returns the copath of x ordered from x's sibling upwards: the
// sibling of x and of each node of its direct path except the root, and an
// empty slice for the root (§4.1.2, Appendix C).
func Copath(x NodeIndex, n LeafCount) ([]NodeIndex, error) {
	if err := checkNode(x, n); err != nil {
		return nil, err
	}
	return AppendCopath(make([]NodeIndex, 0, depth(x, n)), x, n)
}

// AppendCopath appends the copath of x to dst, as Copath does, and returns
// the extended slice; it allocates only if dst is too small.
func AppendCopath(dst []NodeIndex, x NodeIndex, n LeafCount) ([]NodeIndex, error) {
	if err := checkNode(x, n); err != nil {
		return dst, err
	}
	r := root(n)
	for x != r {
		p := parent(x)
		dst = append(dst, sibling(x, p))
		x = p
	}
	return dst, nil
}

// CommonAncestor returns the lowest node that is x or on x's direct path and
// also y or on y's direct path (Appendix C common_ancestor_direct). The
// common ancestor of a node and itself is the node.
func CommonAncestor(x, y NodeIndex, n LeafCount) (NodeIndex, error) {
	if err := checkNode(x, n); err != nil {
		return 0, err
	}
	if err := checkNode(y, n); err != nil {
		return 0, err
	}
	// One node is an ancestor of (or equal to) the other when they agree on
	// every bit above the ancestor's level.
	lx, ly := Level(x)+1, Level(y)+1
	if lx <= ly && x>>ly == y>>ly {
		return y, nil
	}
	if ly <= lx && x>>lx == y>>lx {
		return x, nil
	}
	// Otherwise the ancestor keeps the longest common prefix, followed by a
	// zero bit and ones down to its level.
	k := uint(bits.Len32(uint32(x ^ y)))
	return (x>>k)<<k + (NodeIndex(1)<<(k-1) - 1), nil
}

// LeafToNode returns the node index 2l of leaf l in a tree with n leaves.
func LeafToNode(l LeafIndex, n LeafCount) (NodeIndex, error) {
	if !n.Valid() {
		return 0, ErrInvalidLeafCount
	}
	if uint32(l) >= uint32(n) {
		return 0, ErrOutOfRange
	}
	return NodeIndex(l) * 2, nil
}

// NodeToLeaf returns the leaf index x/2 of leaf node x in a tree with n
// leaves, and ErrNotLeaf for a parent node.
func NodeToLeaf(x NodeIndex, n LeafCount) (LeafIndex, error) {
	if err := checkNode(x, n); err != nil {
		return 0, err
	}
	if !IsLeaf(x) {
		return 0, ErrNotLeaf
	}
	return LeafIndex(x / 2), nil
}
