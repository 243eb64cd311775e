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
// # Taking a key back
//
// Key and NextKey hand a key out at once, so a message that then fails to
// decrypt or verify has still used it up. A caller that must leave its
// state unchanged when it rejects a message prepares the key instead
// (TakeKey, TakeNext), which changes nothing, and then either confirms the
// Take once the message is accepted, which applies exactly what Key or
// NextKey would have, or aborts it. Confirm reports which live secrets
// appeared and which died (Change), for a caller that stores them one by
// one.
//
// # Storing a tree
//
// Export lists the live secrets of a tree (State): the derived nodes none
// of whose children is derived, the ratchets of the leaves in use and the
// kept keys of skipped generations. Restore rebuilds the tree from such a
// list, after checking that it is one a Tree can be in.
//
// A Tree is safe for concurrent use. Errors are sentinels matched with
// errors.Is; no input makes the package panic.
package secrettree

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treemath"
)

// Errors returned by this package; all are matched with errors.Is.
var (
	// ErrNilSuite is returned by New and Restore for a nil cipher suite.
	ErrNilSuite = errors.New("secrettree: nil cipher suite")
	// ErrSecretLength is returned by New for an encryption_secret whose
	// length is not KDF.Nh.
	ErrSecretLength = errors.New("secrettree: encryption secret length is not KDF.Nh")
	// ErrInvalidLeafCount is returned by New and Restore for a leaf count
	// of zero or above treemath.MaxLeafCount.
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
	// ErrStaleTake is returned by Take.Confirm for a take already
	// confirmed or aborted, or prepared before the tree last changed.
	ErrStaleTake = errors.New("secrettree: take is stale")
	// ErrInvalidState is returned by Restore for a State that no Tree can
	// be in.
	ErrInvalidState = errors.New("secrettree: invalid state")
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

func (r RatchetType) valid() bool { return r == Handshake || r == Application }

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

func newConfig(opts []Option) config {
	cfg := config{tolerance: DefaultOutOfOrderTolerance, maxForward: DefaultMaxForwardDistance}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	return cfg
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

// deriveChild is tree_node_[child]_secret (§9): ExpandWithLabel of the
// parent's secret with "tree" and "left" or "right".
func (t *Tree) deriveChild(parent secret.Secret, child, p treemath.NodeIndex) (secret.Secret, error) {
	side := "right"
	if child < p {
		side = "left"
	}
	b, err := t.suite.ExpandWithLabel(parent.Bytes(), "tree", []byte(side), t.suite.HashLen())
	if err != nil {
		return secret.Secret{}, err
	}
	return secret.New(b), nil
}

// sibling is the other child of p.
func sibling(child, p treemath.NodeIndex) treemath.NodeIndex { return 2*p - child }

// span is the range of leaf indices [first, first+2^level) under node y:
// y's level is its number of trailing one bits (§4.1 array layout).
func span(y treemath.NodeIndex) (first, n uint64) {
	k := bits.TrailingZeros32(^uint32(y))
	return (uint64(y) - (1<<k - 1)) / 2, 1 << k
}

// coversMember reports whether a leaf below n is under node y. Nodes that
// cover none are never derived: no member can ask for their keys.
func coversMember(y treemath.NodeIndex, n treemath.LeafCount) bool {
	first, _ := span(y)
	return first < uint64(n)
}

// Tree is the secret tree of one epoch. Its zero value is not usable; call
// New or Restore.
type Tree struct {
	mu    sync.Mutex
	suite *ciphersuite.Suite
	n     treemath.LeafCount // leaves in range
	full  treemath.LeafCount // leaves of the perfect tree
	cfg   config
	// version counts the changes of nodes and leaves, so that a Take
	// prepared on an earlier state cannot overwrite a later one.
	version uint64
	// nodes holds the derived nodes none of whose children is derived.
	nodes map[treemath.NodeIndex]secret.Secret
	// leaves holds the ratchets of the leaves whose secret has been
	// derived. The ratchets are never modified once here: a Take builds
	// new ones and Confirm swaps them in.
	leaves map[treemath.LeafIndex]ratchets
}

// ratchets are a leaf's ratchets, indexed by RatchetType-1.
type ratchets [2]*ratchet

func newTree(suite *ciphersuite.Suite, leafCount treemath.LeafCount, opts []Option) (*Tree, error) {
	if suite == nil {
		return nil, ErrNilSuite
	}
	if leafCount == 0 {
		return nil, ErrInvalidLeafCount
	}
	full, err := treemath.FullLeafCount(uint32(leafCount))
	if err != nil {
		return nil, fmt.Errorf("%w: %d", ErrInvalidLeafCount, leafCount)
	}
	return &Tree{
		suite:  suite,
		n:      leafCount,
		full:   full,
		cfg:    newConfig(opts),
		nodes:  map[treemath.NodeIndex]secret.Secret{},
		leaves: map[treemath.LeafIndex]ratchets{},
	}, nil
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
	if suite != nil && encryptionSecret.Len() != suite.HashLen() {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrSecretLength, encryptionSecret.Len(), suite.HashLen())
	}
	t, err := newTree(suite, leafCount, opts)
	if err != nil {
		return nil, err
	}
	root, err := treemath.Root(t.full)
	if err != nil {
		return nil, fmt.Errorf("secrettree: internal error: %w", err)
	}
	t.nodes[root] = encryptionSecret
	return t, nil
}

// LeafCount returns the number of leaves the tree serves.
func (t *Tree) LeafCount() treemath.LeafCount { return t.n }

// NextKey returns the key and nonce of the next unused generation of leaf's
// ratchet, for the member at leaf to encrypt a message, and advances the
// ratchet past it. The tree forgets the key.
func (t *Tree) NextKey(leaf treemath.LeafIndex, rt RatchetType) (KeyNonce, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tk, err := t.prepare(leaf, rt, 0, true)
	if err != nil {
		return KeyNonce{}, err
	}
	kn := tk.kn
	_, err = tk.apply(false)
	return kn, err
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
	tk, err := t.prepare(leaf, rt, generation, false)
	if err != nil {
		return KeyNonce{}, err
	}
	kn := tk.kn
	_, err = tk.apply(false)
	return kn, err
}

// Clear deletes every secret the tree holds. Later calls fail with
// ErrCleared, and so does confirming a Take prepared before.
func (t *Tree) Clear() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for x, s := range t.nodes {
		s.Clear()
		delete(t.nodes, x)
	}
	for l, rs := range t.leaves {
		for _, r := range rs {
			r.clear()
		}
		delete(t.leaves, l)
	}
	t.suite = nil
	t.version++
}

// Format redacts the tree's secrets for every verb.
func (t *Tree) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("secrettree.Tree{[secret]}")) }

// String redacts the tree's secrets.
func (t *Tree) String() string { return "secrettree.Tree{[secret]}" }
