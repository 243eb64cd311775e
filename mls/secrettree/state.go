package secrettree

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treemath"
)

// State lists the live secrets of a Tree: what has been derived and not
// yet deleted (§9.2). Export fills it, sorted; Restore accepts any order.
// It holds neither the leaf count nor the options, which the tree's owner
// knows.
type State struct {
	// Nodes are the tree nodes whose secret is derived and none of whose
	// children's is.
	Nodes []NodeSecret
	// Ratchets are the two ratchets of every leaf whose secret has been
	// derived.
	Ratchets []RatchetSecret
	// Kept are the keys of skipped generations kept for out-of-order
	// messages.
	Kept []KeptKey
}

// NodeSecret is tree_node_[Node]_secret (§9), KDF.Nh bytes.
type NodeSecret struct {
	Node   treemath.NodeIndex
	Secret secret.Secret
}

// RatchetSecret is the state of one ratchet of a leaf (§9.1).
type RatchetSecret struct {
	Leaf treemath.LeafIndex
	Type RatchetType
	// Next is the ratchet's next generation, and 2^32 once all have been
	// used.
	Next uint64
	// Secret is ratchet_secret_[Leaf]_[Next], KDF.Nh bytes, and empty
	// once Next is 2^32: no generation is left to derive from it.
	Secret secret.Secret
}

// KeptKey is the key and nonce of a skipped generation of a ratchet, below
// its Next.
type KeptKey struct {
	Leaf treemath.LeafIndex
	Type RatchetType
	KeyNonce
}

// Clear deletes every secret of the state.
func (s *State) Clear() {
	for i := range s.Nodes {
		s.Nodes[i].Secret.Clear()
	}
	for i := range s.Ratchets {
		s.Ratchets[i].Secret.Clear()
	}
	for i := range s.Kept {
		s.Kept[i].Clear()
	}
}

func sortNodes(ns []NodeSecret) {
	slices.SortFunc(ns, func(a, b NodeSecret) int { return cmp.Compare(a.Node, b.Node) })
}

// Export returns copies of the tree's live secrets, which the caller owns
// and clears. A Tree restored from them with the same leaf count and
// options behaves as this one. A cleared tree exports nothing.
func (t *Tree) Export() State {
	t.mu.Lock()
	defer t.mu.Unlock()
	var s State
	for x, ns := range t.nodes {
		s.Nodes = append(s.Nodes, NodeSecret{Node: x, Secret: secret.Copy(ns.Bytes())})
	}
	sortNodes(s.Nodes)
	leaves := make([]treemath.LeafIndex, 0, len(t.leaves))
	for l := range t.leaves {
		leaves = append(leaves, l)
	}
	slices.Sort(leaves)
	for _, l := range leaves {
		for i, r := range t.leaves[l] {
			rt := RatchetType(i + 1)
			s.Ratchets = append(s.Ratchets, RatchetSecret{Leaf: l, Type: rt, Next: r.next, Secret: secret.Copy(r.secret.Bytes())})
			for _, k := range r.kept {
				s.Kept = append(s.Kept, KeptKey{Leaf: l, Type: rt, KeyNonce: copyKeyNonce(k)})
			}
		}
	}
	return s
}

// Restore rebuilds the tree of a group of leafCount leaves from the live
// secrets Export listed. It takes ownership of st's secrets: the tree
// keeps them, or Restore clears them when it fails.
//
// It fails with ErrInvalidState unless st is a state a Tree can be in: node
// indexes within the tree and over at least one member, one entry per
// node, ratchet and kept generation, lengths of KDF.Nh (AEAD.Nk and Nn for
// kept keys), both ratchets of each leaf used, kept keys below their
// ratchet's Next, and every member's leaf either used or under exactly one
// stored node (§9.2: a node is stored only while none of its children is
// derived). Kept keys further below Next than the tolerance are accepted,
// since the tree may have been written with a wider one; they go at the
// ratchet's next step forward.
func Restore(suite *ciphersuite.Suite, leafCount treemath.LeafCount, st State, opts ...Option) (*Tree, error) {
	t, err := newTree(suite, leafCount, opts)
	if err == nil {
		err = t.restore(st)
	}
	if err != nil {
		st.Clear()
		return nil, err
	}
	return t, nil
}

func (t *Tree) restore(st State) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidState}, args...)...)
	}
	nh, nk, nn := t.suite.HashLen(), t.suite.KeyLen(), t.suite.NonceLen()
	width := 2*uint64(t.full) - 1
	// spans are the leaves under each stored node and each used leaf.
	type leafSpan struct{ first, end uint64 }
	spans := make([]leafSpan, 0, len(st.Nodes)+len(st.Ratchets)/2)
	for _, nd := range st.Nodes {
		switch {
		case uint64(nd.Node) >= width:
			return bad("node %d outside a tree of %d leaves", nd.Node, t.full)
		case !coversMember(nd.Node, t.n):
			return bad("node %d covers no member", nd.Node)
		case nd.Secret.Len() != nh:
			return bad("node %d secret of %d bytes", nd.Node, nd.Secret.Len())
		}
		if _, dup := t.nodes[nd.Node]; dup {
			return bad("node %d listed twice", nd.Node)
		}
		t.nodes[nd.Node] = nd.Secret
		first, n := span(nd.Node)
		spans = append(spans, leafSpan{first, min(first+n, uint64(t.n))})
	}
	for _, r := range st.Ratchets {
		switch {
		case !r.Type.valid():
			return bad("ratchet type %d", uint8(r.Type))
		case uint32(r.Leaf) >= uint32(t.n):
			return bad("ratchet of leaf %d of %d", r.Leaf, t.n)
		case r.Next > math.MaxUint32+1:
			return bad("leaf %d %v ratchet at generation %d", r.Leaf, r.Type, r.Next)
		case r.Next <= math.MaxUint32 && r.Secret.Len() != nh, r.Next > math.MaxUint32 && r.Secret.Len() != 0:
			return bad("leaf %d %v ratchet secret of %d bytes at generation %d", r.Leaf, r.Type, r.Secret.Len(), r.Next)
		}
		rs := t.leaves[r.Leaf]
		if rs[r.Type-1] != nil {
			return bad("leaf %d %v ratchet listed twice", r.Leaf, r.Type)
		}
		rs[r.Type-1] = &ratchet{secret: r.Secret, next: r.Next}
		t.leaves[r.Leaf] = rs
	}
	for l, rs := range t.leaves {
		if rs[0] == nil || rs[1] == nil {
			return bad("leaf %d has one ratchet", l)
		}
		spans = append(spans, leafSpan{uint64(l), uint64(l) + 1})
	}
	for _, k := range st.Kept {
		if !k.Type.valid() {
			return bad("kept key of ratchet type %d", uint8(k.Type))
		}
		r := t.leaves[k.Leaf][k.Type-1] // nil for a leaf out of range
		switch {
		case r == nil:
			return bad("kept key of leaf %d with no %v ratchet", k.Leaf, k.Type)
		case uint64(k.Generation) >= r.next:
			return bad("kept key of leaf %d %v generation %d not below %d", k.Leaf, k.Type, k.Generation, r.next)
		case k.Key.Len() != nk || k.Nonce.Len() != nn:
			return bad("kept key of leaf %d %v generation %d of %d and %d bytes", k.Leaf, k.Type, k.Generation, k.Key.Len(), k.Nonce.Len())
		}
		r.kept = append(r.kept, k.KeyNonce)
	}
	for l, rs := range t.leaves {
		for _, r := range rs {
			slices.SortFunc(r.kept, func(a, b KeyNonce) int { return cmp.Compare(a.Generation, b.Generation) })
			for i := 1; i < len(r.kept); i++ {
				if r.kept[i].Generation == r.kept[i-1].Generation {
					return bad("kept key of leaf %d generation %d listed twice", l, r.kept[i].Generation)
				}
			}
		}
	}
	// The stored nodes and used leaves must partition the members: a gap
	// is a leaf whose keys are lost, an overlap a secret kept after being
	// consumed.
	slices.SortFunc(spans, func(a, b leafSpan) int { return cmp.Compare(a.first, b.first) })
	end := uint64(0)
	for _, s := range spans {
		switch {
		case s.first < end:
			return bad("leaf %d under two stored secrets", s.first)
		case s.first > end:
			return bad("leaves %d to %d under no stored secret", end, s.first-1)
		}
		end = s.end
	}
	if end != uint64(t.n) {
		return bad("leaves %d to %d under no stored secret", end, uint64(t.n)-1)
	}
	return nil
}
