// Package secrettree implements the MLS secret tree and its per-sender hash
// ratchets (RFC 9420 §9), which produce the AEAD keys and nonces of
// PrivateMessages.
//
// Build one Tree per epoch from the epoch's encryption_secret
// (keyschedule.Epoch.TakeEncryptionSecret) and the ratchet tree's leaf
// count. A sender asks for the next key of its own leaf:
//
//	kn, err := tree.NextKey(myLeaf, secrettree.Application)
//	// encrypt with kn.Key and kn.Nonce (after applying the reuse guard),
//	// put kn.Generation in the SenderData, then kn.Clear()
//
// A receiver asks for the key of the (leaf, generation) named by the
// decrypted SenderData:
//
//	kn, err := tree.Key(senderLeaf, secrettree.Application, generation)
//
// The tree is derived lazily: only the nodes on the path from the root to
// a leaf that is used are computed, and ratchets advance only as far as
// the generations asked for, so a tree for tens of thousands of members
// costs nothing until they speak.
//
// Deletion (§9.2): a tree node's secret is consumed, and cleared, as soon
// as a child is derived from it (both children are derived then, the
// unused one kept in its place), a leaf's secret as soon as its two ratchets
// are initialized, a ratchet secret as soon as the next one is derived, and
// a key is forgotten once it has been handed out: asking for it again fails
// with ErrGenerationConsumed. A receiver keeps the keys of skipped
// generations for out-of-order messages, but only for the
// WithOutOfOrderTolerance most recent generations below the newest one it
// has derived, and refuses to ratchet more than WithMaxForwardDistance
// generations ahead (ErrTooDistantInFuture). Returned keys and nonces are
// owned by the caller, who clears them after use.
//
// A Tree is safe for concurrent use. Errors are sentinels matched with
// errors.Is; no input makes the package panic.
package secrettree

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sync"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treemath"
)

// Errors returned by this package; all are matched with errors.Is.
var (
	// ErrNilSuite is returned by New for a nil cipher suite.
	ErrNilSuite = errors.New("secrettree: nil cipher suite")
	// ErrSecretLength is returned by New for an encryption_secret whose
	// length is not KDF.Nh.
	ErrSecretLength = errors.New("secrettree: encryption secret length is not KDF.Nh")
	// ErrInvalidLeafCount is returned by New for a leaf count of zero or
	// above treemath.MaxLeafCount.
	ErrInvalidLeafCount = errors.New("secrettree: invalid leaf count")
	// ErrLeafOutOfRange is returned for a leaf index not below the leaf
	// count.
	ErrLeafOutOfRange = errors.New("secrettree: leaf index out of range")
	// ErrInvalidRatchetType is returned for a RatchetType other than
	// Handshake and Application.
	ErrInvalidRatchetType = errors.New("secrettree: invalid ratchet type")
	// ErrGenerationConsumed is returned for a generation whose key has
	// already been handed out or deleted: a replay, or a message older than
	// the out-of-order tolerance.
	ErrGenerationConsumed = errors.New("secrettree: generation already consumed or deleted")
	// ErrTooDistantInFuture is returned for a generation further ahead of
	// the ratchet than the maximum forward distance.
	ErrTooDistantInFuture = errors.New("secrettree: generation too far in the future")
	// ErrRatchetExhausted is returned once all 2^32 generations of a
	// ratchet have been used.
	ErrRatchetExhausted = errors.New("secrettree: ratchet exhausted")
	// ErrCleared is returned by a Tree after Clear.
	ErrCleared = errors.New("secrettree: tree has been cleared")
)

// RatchetType selects one of a leaf's two hash ratchets (§9).
type RatchetType uint8

// The two ratchets of every leaf. The zero RatchetType is invalid.
const (
	// Handshake is the ratchet for PrivateMessages carrying a Proposal or
	// a Commit.
	Handshake RatchetType = 1
	// Application is the ratchet for PrivateMessages carrying application
	// data.
	Application RatchetType = 2
)

// String returns "handshake", "application" or a numeric form.
func (r RatchetType) String() string {
	switch r {
	case Handshake:
		return "handshake"
	case Application:
		return "application"
	}
	return fmt.Sprintf("RatchetType(%d)", uint8(r))
}

// Defaults for the receiver's window.
const (
	// DefaultOutOfOrderTolerance is how many skipped generations below the
	// newest one a receiver keeps keys for, by default.
	DefaultOutOfOrderTolerance = 5
	// DefaultMaxForwardDistance is how many generations a receiver may
	// skip ahead in one step, by default.
	DefaultMaxForwardDistance = 1000
)

type config struct {
	tolerance  uint32
	maxForward uint32
}

// Option configures a Tree.
type Option func(*config)

// WithOutOfOrderTolerance sets how many generations below the newest one
// derived remain decryptable: when a receiver skips generations, it keeps
// the keys of at most the n newest skipped ones and deletes the others. 0
// allows no out-of-order delivery.
func WithOutOfOrderTolerance(n uint32) Option { return func(c *config) { c.tolerance = n } }

// WithMaxForwardDistance sets how far ahead of a ratchet's next generation
// a receiver may be asked for: generation g is refused with
// ErrTooDistantInFuture when g - next > n. 0 accepts only the next
// generation.
func WithMaxForwardDistance(n uint32) Option { return func(c *config) { c.maxForward = n } }

// KeyNonce is the AEAD key and nonce of one generation of a ratchet (§9.1).
type KeyNonce struct {
	// Generation is the ratchet generation the key and nonce belong to.
	Generation uint32
	// Key is ratchet_key_[N]_[Generation], AEAD.Nk bytes.
	Key secret.Secret
	// Nonce is ratchet_nonce_[N]_[Generation], AEAD.Nn bytes, before the
	// reuse guard is applied.
	Nonce secret.Secret
}

// Clear deletes the key and nonce.
func (k *KeyNonce) Clear() {
	k.Key.Clear()
	k.Nonce.Clear()
}

// node is a tree node whose secret has been derived and not yet consumed:
// none of its children has been derived.
type node struct {
	s secret.Secret
}

// deriveChild is tree_node_[child]_secret (§9): ExpandWithLabel of the
// parent's secret with "tree" and "left" or "right".
func (t *Tree) deriveChild(parent secret.Secret, child, p treemath.NodeIndex) ([]byte, error) {
	side := "right"
	if child < p {
		side = "left"
	}
	return t.suite.ExpandWithLabel(parent.Bytes(), "tree", []byte(side), t.suite.HashLen())
}

// sibling is the other child of p.
func sibling(child, p treemath.NodeIndex) treemath.NodeIndex { return 2*p - child }

// leftmostLeaf is the leaf index of the leftmost leaf under node y: y's
// level is its number of trailing one bits (§4.1 array layout).
func leftmostLeaf(y treemath.NodeIndex) uint32 {
	k := bits.TrailingZeros32(^uint32(y))
	return (uint32(y) - (1<<k - 1)) / 2
}

// Tree is the secret tree of one epoch. Its zero value is not usable; call
// New.
type Tree struct {
	mu     sync.Mutex
	suite  *ciphersuite.Suite
	n      treemath.LeafCount // leaves in range
	full   treemath.LeafCount // leaves of the perfect tree
	cfg    config
	nodes  map[treemath.NodeIndex]*node
	leaves map[treemath.LeafIndex]*leafRatchets
}

type leafRatchets struct {
	handshake, application ratchet
}

// New returns the secret tree rooted at encryptionSecret (KDF.Nh bytes)
// for a group whose ratchet tree has leafCount leaves. New takes ownership
// of encryptionSecret and clears it once it is consumed (§9.2).
//
// Leaf indices at or above leafCount are rejected. The shape of the tree is
// that of the smallest perfect tree with at least leafCount leaves, which
// is the ratchet tree's own shape (RFC 9420 §4.1, §7.7), so leafCount may
// be the ratchet tree's leaf count or any smaller count that still covers
// every member.
func New(suite *ciphersuite.Suite, encryptionSecret secret.Secret, leafCount treemath.LeafCount, opts ...Option) (*Tree, error) {
	if suite == nil {
		return nil, ErrNilSuite
	}
	if encryptionSecret.Len() != suite.HashLen() {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrSecretLength, encryptionSecret.Len(), suite.HashLen())
	}
	if leafCount == 0 {
		return nil, ErrInvalidLeafCount
	}
	full, err := treemath.FullLeafCount(uint32(leafCount))
	if err != nil {
		return nil, fmt.Errorf("%w: %d", ErrInvalidLeafCount, leafCount)
	}
	root, err := treemath.Root(full)
	if err != nil {
		return nil, fmt.Errorf("secrettree: internal error: %w", err)
	}
	cfg := config{tolerance: DefaultOutOfOrderTolerance, maxForward: DefaultMaxForwardDistance}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	return &Tree{
		suite:  suite,
		n:      leafCount,
		full:   full,
		cfg:    cfg,
		nodes:  map[treemath.NodeIndex]*node{root: {s: encryptionSecret}},
		leaves: map[treemath.LeafIndex]*leafRatchets{},
	}, nil
}

// LeafCount returns the number of leaves the tree serves.
func (t *Tree) LeafCount() treemath.LeafCount { return t.n }

// NextKey returns the key and nonce of the next unused generation of leaf's
// ratchet, for the member at leaf to encrypt a message, and advances the
// ratchet past it. The tree forgets the key.
func (t *Tree) NextKey(leaf treemath.LeafIndex, rt RatchetType) (KeyNonce, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, err := t.ratchet(leaf, rt)
	if err != nil {
		return KeyNonce{}, err
	}
	if r.next > math.MaxUint32 {
		return KeyNonce{}, ErrRatchetExhausted
	}
	return r.take(t.suite, uint32(r.next), t.cfg)
}

// Key returns the key and nonce of the given generation of leaf's ratchet,
// for decrypting a message from the member at leaf, and deletes them from
// the tree. Generations the ratchet passes to get there are kept, within
// the out-of-order tolerance, for messages that arrive late. It fails with
// ErrGenerationConsumed for a generation already handed out or deleted and
// with ErrTooDistantInFuture beyond the maximum forward distance.
func (t *Tree) Key(leaf treemath.LeafIndex, rt RatchetType, generation uint32) (KeyNonce, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, err := t.ratchet(leaf, rt)
	if err != nil {
		return KeyNonce{}, err
	}
	kn, err := r.take(t.suite, generation, t.cfg)
	if err != nil {
		return KeyNonce{}, fmt.Errorf("%w (leaf %d, %v ratchet, generation %d)", err, leaf, rt, generation)
	}
	return kn, nil
}

// Clear deletes every secret the tree holds. Later calls fail with
// ErrCleared.
func (t *Tree) Clear() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for x, nd := range t.nodes {
		nd.s.Clear()
		delete(t.nodes, x)
	}
	for l, lr := range t.leaves {
		lr.handshake.clear()
		lr.application.clear()
		delete(t.leaves, l)
	}
	t.suite = nil
}

// ratchet returns the ratchet of the given type at leaf, initializing the
// leaf's ratchets on first use.
func (t *Tree) ratchet(leaf treemath.LeafIndex, rt RatchetType) (*ratchet, error) {
	if t.suite == nil {
		return nil, ErrCleared
	}
	if rt != Handshake && rt != Application {
		return nil, fmt.Errorf("%w: %d", ErrInvalidRatchetType, uint8(rt))
	}
	if uint32(leaf) >= uint32(t.n) {
		return nil, fmt.Errorf("%w: leaf %d of %d", ErrLeafOutOfRange, leaf, t.n)
	}
	lr, ok := t.leaves[leaf]
	if !ok {
		var err error
		if lr, err = t.initLeaf(leaf); err != nil {
			return nil, err
		}
		t.leaves[leaf] = lr
	}
	if rt == Handshake {
		return &lr.handshake, nil
	}
	return &lr.application, nil
}

// initLeaf derives the secret of leaf from its deepest derived ancestor
// (§9), replacing each node secret on the way by its two children's, and
// turns it into the roots of the leaf's two ratchets:
//
//	handshake_ratchet_secret_[N]_[0] = ExpandWithLabel(., "handshake", "", KDF.Nh)
//	application_ratchet_secret_[N]_[0] = ExpandWithLabel(., "application", "", KDF.Nh)
func (t *Tree) initLeaf(leaf treemath.LeafIndex) (*leafRatchets, error) {
	x, err := treemath.LeafToNode(leaf, t.full)
	if err != nil {
		return nil, fmt.Errorf("secrettree: internal error: %w", err)
	}
	// chain is the leaf followed by its direct path up to the root; a
	// perfect tree of at most 2^31 leaves is at most 31 levels deep.
	var buf [33]treemath.NodeIndex
	chain := append(buf[:0], x)
	if chain, err = treemath.AppendDirectPath(chain, x, t.full); err != nil {
		return nil, fmt.Errorf("secrettree: internal error: %w", err)
	}
	// The deepest stored node of the chain is where derivation resumes.
	// Every node between it and the leaf is underived: had one been
	// derived and deleted, its children (and so this leaf) would be too.
	start := -1
	for i, y := range chain {
		if _, ok := t.nodes[y]; ok {
			start = i
			break
		}
	}
	if start < 0 {
		return nil, fmt.Errorf("secrettree: internal error: no derived ancestor of leaf %d", leaf)
	}
	var leafSecret secret.Secret
	if start == 0 {
		// A one-leaf tree: the root is the leaf.
		leafSecret = t.nodes[x].s
		delete(t.nodes, x)
	}
	for i := start; i > 0; i-- {
		p, child := chain[i], chain[i-1]
		nd := t.nodes[p]
		// §9.2: a node whose child is derived is consumed and deleted at
		// once; so the sibling is derived now and kept in its place (the
		// RFC's example keeps E and C, deletes D, F and G).
		b, err := t.deriveChild(nd.s, child, p)
		if err != nil {
			return nil, err
		}
		sib := sibling(child, p)
		if leftmostLeaf(sib) < uint32(t.n) {
			sb, err := t.deriveChild(nd.s, sib, p)
			if err != nil {
				clear(b)
				return nil, err
			}
			t.nodes[sib] = &node{s: secret.New(sb)}
		}
		nd.s.Clear()
		delete(t.nodes, p)
		if i-1 == 0 {
			leafSecret = secret.New(b)
		} else {
			t.nodes[child] = &node{s: secret.New(b)}
		}
	}
	defer leafSecret.Clear()
	nh := t.suite.HashLen()
	hs, err := t.suite.ExpandWithLabel(leafSecret.Bytes(), "handshake", nil, nh)
	if err != nil {
		return nil, err
	}
	as, err := t.suite.ExpandWithLabel(leafSecret.Bytes(), "application", nil, nh)
	if err != nil {
		clear(hs)
		return nil, err
	}
	return &leafRatchets{
		handshake:   ratchet{secret: secret.New(hs)},
		application: ratchet{secret: secret.New(as)},
	}, nil
}

// Format redacts the tree's secrets for every verb.
func (t *Tree) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("secrettree.Tree{[secret]}")) }

// String redacts the tree's secrets.
func (t *Tree) String() string { return "secrettree.Tree{[secret]}" }
