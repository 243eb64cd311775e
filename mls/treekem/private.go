package treekem

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treemath"
)

// NodeKey is the HPKE private key a member holds for one parent node on its
// direct path.
type NodeKey struct {
	Node treemath.NodeIndex
	Key  *ciphersuite.HPKEPrivateKey
}

// NodePathSecret is the path secret of one parent node, from which the
// node's key pair is derived (§7.4).
type NodePathSecret struct {
	Node       treemath.NodeIndex
	PathSecret secret.Secret
}

// PrivateState is the private side of a member's view of the ratchet tree
// (§4.2, §7.4): its leaf index, the HPKE private key of its leaf and the HPKE
// private keys of the parent nodes on its direct path that it knows. It is
// kept apart from the public tree so that storage can treat it as key
// material.
//
// A PrivateState is immutable once built: ProcessUpdatePath and
// CreateUpdatePath return a new one and leave the old one untouched, so that a
// Commit rejected at a later step changes nothing. Clear releases the keys of
// a state that is no longer needed. The keys themselves are immutable and may
// be shared between an old state and the new one derived from it.
//
// Printing a PrivateState shows its leaf and node indexes, never its keys.
type PrivateState struct {
	suite   *ciphersuite.Suite
	leaf    treemath.LeafIndex
	leafKey *ciphersuite.HPKEPrivateKey
	// nodes holds ancestors of the leaf, sorted from the lowest level up,
	// at most one per node; at most 32 entries, so a slice beats a map.
	nodes []NodeKey
}

// NewPrivateState builds the private state of the member at leaf from its
// leaf private key and the private keys it holds for parent nodes, for
// instance as restored from storage. Every node must be a parent node on the
// leaf's direct path and appear once. Check compares the result with the
// public tree.
func NewPrivateState(suite *ciphersuite.Suite, leaf treemath.LeafIndex, leafKey *ciphersuite.HPKEPrivateKey, nodes []NodeKey) (*PrivateState, error) {
	if suite == nil || leafKey == nil {
		return nil, fmt.Errorf("%w: nil suite or leaf key", ErrInvalidArgument)
	}
	if uint64(leaf) >= uint64(treemath.MaxLeafCount) {
		return nil, fmt.Errorf("%w: leaf %d out of range", ErrInvalidArgument, leaf)
	}
	ps := &PrivateState{suite: suite, leaf: leaf, leafKey: leafKey}
	for _, nk := range nodes {
		if nk.Key == nil {
			return nil, fmt.Errorf("%w: nil key for node %d", ErrInvalidArgument, nk.Node)
		}
		if err := ps.set(nk.Node, nk.Key); err != nil {
			return nil, err
		}
	}
	return ps, nil
}

// PrivateStateFromPathSecrets builds the private state of the member at leaf
// from its leaf private key and the path secrets of parent nodes on its
// direct path, deriving each node's key pair as §7.4 does:
//
//	node_secret = DeriveSecret(path_secret, "node")
//	node_priv, node_pub = KEM.DeriveKeyPair(node_secret)
//
// It neither retains nor clears the path secrets.
func PrivateStateFromPathSecrets(suite *ciphersuite.Suite, leaf treemath.LeafIndex, leafKey *ciphersuite.HPKEPrivateKey, secrets []NodePathSecret) (*PrivateState, error) {
	if suite == nil {
		return nil, fmt.Errorf("%w: nil suite", ErrInvalidArgument)
	}
	raw := make([][]byte, len(secrets))
	for i, s := range secrets {
		raw[i] = s.PathSecret.Bytes()
	}
	keys, err := deriveNodeKeys(suite, raw)
	if err != nil {
		return nil, err
	}
	nodes := make([]NodeKey, len(secrets))
	for i, s := range secrets {
		nodes[i] = NodeKey{Node: s.Node, Key: keys[i]}
	}
	return NewPrivateState(suite, leaf, leafKey, nodes)
}

// set records key for node n, which must be a parent node on the leaf's
// direct path that the state does not hold yet.
func (ps *PrivateState) set(n treemath.NodeIndex, key *ciphersuite.HPKEPrivateKey) error {
	x := leafNode(ps.leaf)
	if treemath.IsLeaf(n) || !covers(n, x) {
		return fmt.Errorf("%w: node %d is not on the direct path of leaf %d", ErrInvalidArgument, n, ps.leaf)
	}
	i, found := slices.BinarySearchFunc(ps.nodes, n, cmpLevel)
	if found {
		return fmt.Errorf("%w: node %d given twice", ErrInvalidArgument, n)
	}
	ps.nodes = slices.Insert(ps.nodes, i, NodeKey{Node: n, Key: key})
	return nil
}

// cmpLevel orders the ancestors of one leaf: on a direct path the level
// increases strictly, so it identifies the node.
func cmpLevel(nk NodeKey, n treemath.NodeIndex) int {
	return int(treemath.Level(nk.Node)) - int(treemath.Level(n))
}

// Suite returns the state's cipher suite.
func (ps *PrivateState) Suite() *ciphersuite.Suite { return ps.suite }

// Leaf returns the member's leaf index.
func (ps *PrivateState) Leaf() treemath.LeafIndex { return ps.leaf }

// LeafKey returns the HPKE private key of the member's leaf (nil after
// Clear).
func (ps *PrivateState) LeafKey() *ciphersuite.HPKEPrivateKey { return ps.leafKey }

// Key returns the private key held for node n: the leaf key for the
// member's own leaf node, a node key for a parent node, or nil.
func (ps *PrivateState) Key(n treemath.NodeIndex) *ciphersuite.HPKEPrivateKey {
	if n == leafNode(ps.leaf) {
		return ps.leafKey
	}
	if i, ok := slices.BinarySearchFunc(ps.nodes, n, cmpLevel); ok && ps.nodes[i].Node == n {
		return ps.nodes[i].Key
	}
	return nil
}

// Nodes returns the parent-node keys the state holds, from the lowest node
// on the direct path up, in a new slice. Storage persists them with
// Key.Bytes() and restores them with NewPrivateState.
func (ps *PrivateState) Nodes() []NodeKey { return slices.Clone(ps.nodes) }

// check implements Check over any publicTree.
func (ps *PrivateState) check(t publicTree) error {
	if ps.leafKey == nil {
		return fmt.Errorf("%w: cleared", ErrInconsistentState)
	}
	if !sameSuite(t.Suite(), ps.suite) {
		return fmt.Errorf("%w: the tree and the private state are of different suites", ErrInvalidArgument)
	}
	width, err := t.LeafCount().Width()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	checkNode := func(n treemath.NodeIndex, k *ciphersuite.HPKEPrivateKey) error {
		if uint64(n) >= uint64(width) || t.IsBlank(n) {
			return fmt.Errorf("%w: node %d is blank or outside the tree", ErrInconsistentState, n)
		}
		if !equalPublicKey(k, t.EncryptionKey(n)) {
			return fmt.Errorf("%w: key for node %d does not match its encryption_key", ErrInconsistentState, n)
		}
		return nil
	}
	if err := checkNode(leafNode(ps.leaf), ps.leafKey); err != nil {
		return err
	}
	for _, nk := range ps.nodes {
		if err := checkNode(nk.Node, nk.Key); err != nil {
			return err
		}
	}
	return nil
}

// clone returns a copy of ps sharing its (immutable) keys.
func (ps *PrivateState) clone() *PrivateState {
	c := *ps
	c.nodes = slices.Clone(ps.nodes)
	return &c
}

// Clear forgets every key of the state. HPKE private keys cannot be
// overwritten in Go (package ciphersuite holds them as crypto/ecdh values),
// so this drops the state's references and leaves the memory to the garbage
// collector: best effort, as for package secret. Keys shared with a state
// derived from this one stay valid there.
func (ps *PrivateState) Clear() {
	if ps == nil {
		return
	}
	ps.leafKey = nil
	clear(ps.nodes)
	ps.nodes = nil
}

// String describes the state by its leaf and node indexes only. The
// printing methods have value receivers so that a PrivateState value, not
// only a pointer, prints redacted.
func (ps PrivateState) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "treekem.PrivateState{leaf: %d, nodes: [", ps.leaf)
	for i, nk := range ps.nodes {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d", nk.Node)
	}
	b.WriteString("]}")
	return b.String()
}

// GoString is String.
func (ps PrivateState) GoString() string { return ps.String() }

// Format prints String for every verb, so that no verb reveals a key.
func (ps PrivateState) Format(f fmt.State, _ rune) { fmt.Fprint(f, ps.String()) }

// LogValue shows String in log/slog output.
func (ps PrivateState) LogValue() slog.Value { return slog.StringValue(ps.String()) }

// sameSuite reports whether a and b are the same (non-nil) cipher suite.
func sameSuite(a, b *ciphersuite.Suite) bool { return a != nil && b != nil && a.ID() == b.ID() }

// leafNode is the node index 2l of leaf l.
func leafNode(l treemath.LeafIndex) treemath.NodeIndex { return treemath.NodeIndex(2 * uint64(l)) }

// covers reports whether node x is n or lies in the subtree under n: the
// subtree of a node at level k spans the 2^(k+1)-1 indexes centred on it
// (Appendix C).
func covers(n, x treemath.NodeIndex) bool {
	half := uint64(1)<<treemath.Level(n) - 1
	lo := uint64(n) - min(uint64(n), half)
	return uint64(x) >= lo && uint64(x) <= uint64(n)+half
}

// newJoinerState implements NewJoinerState over any publicTree.
func newJoinerState(t publicTree, leaf treemath.LeafIndex, leafKey *ciphersuite.HPKEPrivateKey, committer treemath.LeafIndex, pathSecret secret.Secret) (*PrivateState, error) {
	ps, err := NewPrivateState(t.Suite(), leaf, leafKey, nil)
	if err != nil {
		return nil, err
	}
	if !pathSecret.IsZero() {
		n := t.LeafCount()
		if leaf == committer || uint64(leaf) >= uint64(n) || uint64(committer) >= uint64(n) {
			return nil, fmt.Errorf("%w: leaf %d and committer %d in a tree of %d leaves", ErrInvalidArgument, leaf, committer, n)
		}
		lca, err := treemath.CommonAncestor(leafNode(leaf), leafNode(committer), n)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
		}
		// Above the common ancestor the joiner's filtered direct path is
		// the committer's, whose nodes the Commit set (§12.4.3.1 "for each
		// parent of the common ancestor, up to the root").
		fdp, err := t.FilteredDirectPath(leaf)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
		}
		i := slices.Index(fdp, lca)
		if i < 0 {
			return nil, fmt.Errorf("%w: common ancestor %d is not on the filtered direct path of leaf %d", ErrInconsistentState, lca, leaf)
		}
		chain, commit := pathSecretChain(ps.suite, pathSecret.Bytes(), len(fdp)-i)
		clear(commit)
		keys, err := deriveNodeKeys(ps.suite, chain)
		for _, s := range chain {
			clear(s)
		}
		if err != nil {
			return nil, err
		}
		for j, k := range keys {
			ps.nodes = append(ps.nodes, NodeKey{Node: fdp[i+j], Key: k})
		}
	}
	if err := ps.check(t); err != nil {
		return nil, err
	}
	return ps, nil
}
