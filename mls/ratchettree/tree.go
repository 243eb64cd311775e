package ratchettree

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// Tree is the public ratchet tree of one group (RFC 9420 §4, §7): a perfect
// binary tree of 2^d leaves in the array layout of Appendix C, with leaf l
// at node 2l and parent nodes at odd indexes.
//
// A Tree is not safe for concurrent mutation. Methods that only read may
// run concurrently with each other while no mutating method runs; the
// caches they fill lazily (tree hashes, key index) have their own lock.
//
// Leaves are kept as their LeafNode encodings and parent nodes as shared
// *wire.ParentNode values that are never modified in place: a change
// replaces the node. Values handed out (Leaf, ParentNode, Wire) must not
// be modified by the caller.
type Tree struct {
	suite *ciphersuite.Suite
	nh    int

	n       uint32             // leaf count, a power of two
	leaves  [][]byte           // n LeafNode encodings, nil when blank
	parents []*wire.ParentNode // parent node 2k+1 at k, nil when blank; n slots, the last unused
	filled  bitset             // the non-blank nodes

	mu     sync.Mutex // guards the lazily filled caches below
	hashes []byte     // tree hash of node x at [x*nh : (x+1)*nh]
	dirty  bitset     // nodes whose cached hash is stale; closed under parent
	h      hasher     // scratch for hash inputs
	keys   *keyIndex  // encryption and signature key index, built on first use

	dirtyHint int // about how many nodes became dirty since the last rehashAll

	undo    undoLog
	changed changeSet
}

// hashFuncs maps a hash length to the suite hash, computed without
// allocating. newTree checks it against ciphersuite.Suite.Hash.
func sumInto(nh int, dst, data []byte) {
	switch nh {
	case 32:
		s := sha256.Sum256(data)
		copy(dst, s[:])
	case 48:
		s := sha512.Sum384(data)
		copy(dst, s[:])
	default:
		s := sha512.Sum512(data)
		copy(dst, s[:])
	}
}

// checkedSuites records the suites whose Hash was found to agree with
// sumInto, so the check runs once per suite and process.
var checkedSuites sync.Map // ciphersuite.ID -> bool

func checkSuite(suite *ciphersuite.Suite) error {
	if suite == nil {
		return fmt.Errorf("%w: nil cipher suite", ErrInvalidTree)
	}
	if ok, done := checkedSuites.Load(suite.ID()); done {
		if ok.(bool) {
			return nil
		}
		return fmt.Errorf("ratchettree: internal error: no hash for %v", suite.ID())
	}
	probe := []byte("ratchettree hash probe")
	var got [64]byte
	nh := suite.HashLen()
	ok := nh == 32 || nh == 48 || nh == 64
	if ok {
		sumInto(nh, got[:nh], probe)
		ok = bytes.Equal(got[:nh], suite.Hash(probe))
	}
	checkedSuites.Store(suite.ID(), ok)
	if !ok {
		return fmt.Errorf("ratchettree: internal error: no hash for %v", suite.ID())
	}
	return nil
}

// newTree returns an all-blank tree of n leaves whose every hash is dirty.
func newTree(suite *ciphersuite.Suite, n uint32) *Tree {
	w := width(n)
	return newTreeFrom(suite, n, make([][]byte, n), make([]*wire.ParentNode, n), make([]byte, int(w)*suite.HashLen()))
}

// newTreeFrom is newTree with the given node arrays (n leaves, n parents)
// and hash cache (width(n) hashes), which must be blank and zero; the
// tree takes them.
func newTreeFrom(suite *ciphersuite.Suite, n uint32, leaves [][]byte, parents []*wire.ParentNode, hashes []byte) *Tree {
	w := width(n)
	t := &Tree{
		suite:   suite,
		nh:      suite.HashLen(),
		n:       n,
		leaves:  leaves,
		parents: parents,
		hashes:  hashes,
		filled:  newBitset(w),
		dirty:   newBitset(w),
	}
	t.h.nh = t.nh
	t.dirty.setRange(0, w-1, true)
	t.dirtyHint = int(w)
	return t
}

// New returns a tree holding one member, the creator of a group (§11).
func New(suite *ciphersuite.Suite, ln *wire.LeafNode) (*Tree, error) {
	if err := checkSuite(suite); err != nil {
		return nil, err
	}
	enc, err := leafEncoding(ln)
	if err != nil {
		return nil, err
	}
	t := newTree(suite, 1)
	t.putLeaf(0, enc)
	return t, nil
}

// leafEncoding returns the encoding the tree stores for ln: the received
// bytes of a decoded LeafNode, else a fresh encoding that must decode
// (so that Leaf can always return it).
func leafEncoding(ln *wire.LeafNode) ([]byte, error) {
	if ln == nil {
		return nil, fmt.Errorf("%w: nil leaf node", ErrInvalidTree)
	}
	if raw := ln.Raw(); raw != nil {
		return raw, nil
	}
	enc, err := wire.Marshal(ln)
	if err == nil {
		_, err = wire.Unmarshal[wire.LeafNode](enc)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: leaf node does not encode: %w", ErrInvalidTree, err)
	}
	return enc, nil
}

// builder assembles a tree from nodes in array order, as FromWire and
// Decode receive them.
type builder struct {
	leaves  [][]byte
	parents []*wire.ParentNode
	count   int
	last    *wire.Node
}

func (b *builder) add(node *wire.Node) error {
	i := b.count
	if uint64(i) >= 2*uint64(treemath.MaxLeafCount)-1 {
		return invalidf(nil, "more than %d nodes", 2*uint64(treemath.MaxLeafCount)-1)
	}
	b.count++
	b.last = node
	if i%2 == 0 {
		var enc []byte
		if node != nil {
			if node.NodeType != wire.NodeTypeLeaf || node.LeafNode == nil {
				return invalidf(nil, "node %d is not a leaf node", i)
			}
			var err error
			if enc, err = leafEncoding(node.LeafNode); err != nil {
				return fmt.Errorf("node %d: %w", i, err)
			}
		}
		b.leaves = append(b.leaves, enc)
		return nil
	}
	var p *wire.ParentNode
	if node != nil {
		if node.NodeType != wire.NodeTypeParent || node.ParentNode == nil {
			return invalidf(nil, "node %d is not a parent node", i)
		}
		p = node.ParentNode
	}
	b.parents = append(b.parents, p)
	return nil
}

// finish applies the structural checks of §12.4.3.3 and §7.1 and returns
// the tree, extended with blanks to a full 2^(d+1)-1 nodes.
func (b *builder) finish(suite *ciphersuite.Suite) (*Tree, error) {
	if b.count == 0 {
		return nil, invalidf(nil, "no nodes")
	}
	if b.last == nil {
		// "The receiver MUST check that the last node in ratchet_tree is
		// non-blank" (§12.4.3.3).
		return nil, invalidf(nil, "last node is blank")
	}
	n := uint32(1)
	for int(width(n)) < b.count {
		n *= 2
	}
	t := newTree(suite, n)
	for l, enc := range b.leaves {
		if enc != nil {
			t.putLeaf(uint32(l), enc)
		}
	}
	for k, p := range b.parents {
		if p != nil {
			t.putParent(uint32(2*k+1), p)
		}
	}
	if err := t.checkUnmergedPlacement(); err != nil {
		return nil, err
	}
	return t, nil
}

// checkUnmergedPlacement checks that every unmerged_leaves list is sorted
// without repetition (§7.1) and names non-blank leaves below its node
// (§12.4.3.1).
func (t *Tree) checkUnmergedPlacement() error {
	for k, p := range t.parents {
		if p == nil {
			continue
		}
		x := uint32(2*k + 1)
		lo, hi := leafSpan(x)
		for i, l := range p.UnmergedLeaves {
			switch {
			case i > 0 && l <= p.UnmergedLeaves[i-1]:
				return invalidf(ErrUnmergedLeaf, "node %d: unmerged leaves not in increasing order", x)
			case l >= t.n:
				return fmt.Errorf("%w: %w: %w: node %d: unmerged leaf %d beyond the tree", ErrInvalidTree, ErrUnmergedLeaf, ErrIndexOutOfRange, x, l)
			case l < lo || l > hi:
				return invalidf(ErrUnmergedLeaf, "node %d: unmerged leaf %d is not below it", x, l)
			case t.leaves[l] == nil:
				return invalidf(ErrUnmergedLeaf, "node %d: unmerged leaf %d is blank", x, l)
			}
		}
	}
	return nil
}

// FromWire builds a tree from the array form of the ratchet_tree extension
// (§12.4.3.3), extending it with blank nodes to 2^(d+1)-1 nodes. It checks
// the structure only: at least one node, no trailing blank, leaves at even
// and parents at odd indexes, and unmerged_leaves lists that are sorted and
// name non-blank leaves below their node. Signatures, parent hashes and
// keys are checked by Validate.
//
// The tree keeps the ParentNode values and the leaves' received encodings
// of rt; the caller must not modify them afterwards.
func FromWire(suite *ciphersuite.Suite, rt wire.RatchetTree) (*Tree, error) {
	if err := checkSuite(suite); err != nil {
		return nil, err
	}
	var b builder
	b.leaves = make([][]byte, 0, (len(rt)+1)/2)
	b.parents = make([]*wire.ParentNode, 0, len(rt)/2)
	for _, node := range rt {
		if err := b.add(node); err != nil {
			return nil, err
		}
	}
	return b.finish(suite)
}

// Decode builds a tree from the encoded body of a ratchet_tree extension
// (§12.4.3.3), as FromWire does from the decoded form. It decodes one node
// at a time, so it never holds the whole tree in decoded form. Malformed
// input yields an error matching both ErrInvalidTree and
// codec.ErrMalformed.
func Decode(suite *ciphersuite.Suite, data []byte) (*Tree, error) {
	if err := checkSuite(suite); err != nil {
		return nil, err
	}
	var b builder
	r := codec.NewReader(data)
	r.VectorEach(func(r *codec.Reader) {
		var node *wire.Node
		r.Optional(func(r *codec.Reader) {
			node = new(wire.Node)
			node.UnmarshalMLS(r)
		})
		if r.Err() == nil {
			if err := b.add(node); err != nil {
				r.Fail(err)
			}
		}
	})
	if err := r.Finish(); err != nil {
		if errors.Is(err, ErrInvalidTree) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidTree, err)
	}
	if b.count == 0 || b.last == nil {
		// The checks of wire.RatchetTree: not empty, no trailing blank.
		_, err := b.finish(suite)
		return nil, fmt.Errorf("%w: %w", codec.ErrMalformed, err)
	}
	return b.finish(suite)
}

// Suite returns the tree's cipher suite.
func (t *Tree) Suite() *ciphersuite.Suite { return t.suite }

// LeafCount returns the number of leaves of the tree, blank or not: a power
// of two (§7.7).
func (t *Tree) LeafCount() treemath.LeafCount { return treemath.LeafCount(t.n) }

// Width returns the number of nodes of the tree, 2*LeafCount()-1.
func (t *Tree) Width() uint32 { return width(t.n) }

// MemberCount returns the number of non-blank leaves.
func (t *Tree) MemberCount() int {
	c := 0
	for _, enc := range t.leaves {
		if enc != nil {
			c++
		}
	}
	return c
}

// Leaf returns the LeafNode at leaf l, or nil if it is blank or beyond the
// tree. It is decoded from the stored encoding on each call (about a
// microsecond); hot paths should prefer LeafBytes, EncryptionKey and
// SignatureKey, which do not allocate.
func (t *Tree) Leaf(l treemath.LeafIndex) *wire.LeafNode {
	enc := t.LeafBytes(l)
	if enc == nil {
		return nil
	}
	ln, err := wire.Unmarshal[wire.LeafNode](enc)
	if err != nil {
		return nil // unreachable: only decodable encodings are stored
	}
	return ln
}

// LeafBytes returns the encoded LeafNode at leaf l, or nil if it is blank or
// beyond the tree. The caller must not modify it.
func (t *Tree) LeafBytes(l treemath.LeafIndex) []byte {
	if uint32(l) >= t.n {
		return nil
	}
	return t.leaves[l]
}

// ParentNode returns the parent node at node index n, or nil if n is blank,
// a leaf or beyond the tree. The caller must not modify it.
func (t *Tree) ParentNode(n treemath.NodeIndex) *wire.ParentNode {
	if uint32(n)%2 == 0 || uint32(n) >= width(t.n) {
		return nil
	}
	return t.parents[n/2]
}

// IsBlank reports whether node n is blank; a node beyond the tree counts as
// blank.
func (t *Tree) IsBlank(n treemath.NodeIndex) bool {
	return uint32(n) >= width(t.n) || !t.filled.get(uint32(n))
}

// EncryptionKey returns the encryption key of the leaf or parent node n, or
// nil if n is blank or beyond the tree. It does not allocate; the caller
// must not modify the result.
func (t *Tree) EncryptionKey(n treemath.NodeIndex) []byte {
	x := uint32(n)
	if x >= width(t.n) {
		return nil
	}
	if x%2 == 0 {
		if enc := t.leaves[x/2]; enc != nil {
			k, _ := leafKeys(enc)
			return k
		}
		return nil
	}
	if p := t.parents[x/2]; p != nil {
		return p.EncryptionKey
	}
	return nil
}

// SignatureKey returns the signature key of leaf l, or nil if it is blank
// or beyond the tree. It does not allocate; the caller must not modify the
// result.
func (t *Tree) SignatureKey(l treemath.LeafIndex) []byte {
	enc := t.LeafBytes(l)
	if enc == nil {
		return nil
	}
	_, k := leafKeys(enc)
	return k
}

// Members iterates over the non-blank leaves in increasing order, decoding
// each as Leaf does.
func (t *Tree) Members() iter.Seq2[treemath.LeafIndex, *wire.LeafNode] {
	return func(yield func(treemath.LeafIndex, *wire.LeafNode) bool) {
		for l, enc := range t.leaves {
			if enc == nil {
				continue
			}
			ln, err := wire.Unmarshal[wire.LeafNode](enc)
			if err != nil {
				continue // unreachable
			}
			if !yield(treemath.LeafIndex(l), ln) {
				return
			}
		}
	}
}

// FindLeaf returns the index of a leaf whose encoding equals that of ln, as
// a joiner looks for its own leaf (§12.4.3.1).
func (t *Tree) FindLeaf(ln *wire.LeafNode) (treemath.LeafIndex, bool) {
	if ln == nil {
		return 0, false
	}
	want := ln.Bytes()
	encKey, _ := leafKeys(want)
	if n, ok := t.FindEncryptionKey(encKey); ok && n%2 == 0 && bytes.Equal(t.leaves[n/2], want) {
		return treemath.LeafIndex(n / 2), true
	}
	for l, enc := range t.leaves { // duplicate encryption keys: search all
		if bytes.Equal(enc, want) {
			return treemath.LeafIndex(l), true
		}
	}
	return 0, false
}

// lastFilled returns the highest non-blank node index, or -1 for an
// all-blank tree.
func (t *Tree) lastFilled() int {
	w := width(t.n)
	for i := (w - 1) / 64; ; i-- {
		word := t.filled[i]
		if i == (w-1)/64 {
			word &= rangeMask(0, (w-1)%64)
		}
		if word != 0 {
			return int(i)*64 + 63 - leadingZeros64(word)
		}
		if i == 0 {
			return -1
		}
	}
}

// Wire returns the tree in the array form of the ratchet_tree extension
// (§12.4.3.3): trailing blank nodes are dropped. Leaves are decoded afresh;
// parent nodes are shared with the tree and must not be modified. An
// all-blank tree yields nil.
func (t *Tree) Wire() wire.RatchetTree {
	last := t.lastFilled()
	if last < 0 {
		return nil
	}
	rt := make(wire.RatchetTree, last+1)
	for i := range rt {
		x := uint32(i)
		if !t.filled.get(x) {
			continue
		}
		if x%2 == 0 {
			ln, err := wire.Unmarshal[wire.LeafNode](t.leaves[x/2])
			if err != nil {
				continue // unreachable
			}
			rt[i] = &wire.Node{NodeType: wire.NodeTypeLeaf, LeafNode: ln}
		} else {
			rt[i] = &wire.Node{NodeType: wire.NodeTypeParent, ParentNode: t.parents[x/2]}
		}
	}
	return rt
}

// MarshalMLS writes the tree as the body of a ratchet_tree extension
// (§12.4.3.3), straight from the stored encodings. It is what
// Wire().MarshalMLS writes, without decoding any leaf, so a Tree can be
// passed to wire.NewExtension(wire.ExtensionTypeRatchetTree, t).
func (t *Tree) MarshalMLS(w *codec.Writer) {
	last := t.lastFilled()
	size := 0
	for i := 0; i <= last; i++ {
		size += t.nodeSize(uint32(i))
	}
	w.Varint(size)
	for i := 0; i <= last; i++ {
		x := uint32(i)
		if !t.filled.get(x) {
			w.Uint8(0)
			continue
		}
		w.Uint8(1)
		if x%2 == 0 {
			w.Uint8(uint8(wire.NodeTypeLeaf))
			w.Raw(t.leaves[x/2])
		} else {
			w.Uint8(uint8(wire.NodeTypeParent))
			t.parents[x/2].MarshalMLS(w)
		}
	}
}

// Bytes returns the body of a ratchet_tree extension for the tree, as
// MarshalMLS writes it. It is nil only for a tree too large to encode.
func (t *Tree) Bytes() []byte {
	last := t.lastFilled()
	size := 0
	for i := 0; i <= last; i++ {
		size += t.nodeSize(uint32(i))
	}
	if size > codec.MaxVarint {
		return nil
	}
	b := make([]byte, 0, size+4)
	b = appendVarint(b, size)
	for i := 0; i <= last; i++ {
		x := uint32(i)
		switch {
		case !t.filled.get(x):
			b = append(b, 0)
		case x%2 == 0:
			b = append(b, 1, byte(wire.NodeTypeLeaf))
			b = append(b, t.leaves[x/2]...)
		default:
			b = append(b, 1, byte(wire.NodeTypeParent))
			b = appendParentNode(b, t.parents[x/2], nil)
		}
	}
	return b
}

// nodeSize is the size of node x as an optional<Node>.
func (t *Tree) nodeSize(x uint32) int {
	switch {
	case !t.filled.get(x):
		return 1
	case x%2 == 0:
		return 2 + len(t.leaves[x/2])
	default:
		p := t.parents[x/2]
		u := 4 * len(p.UnmergedLeaves)
		return 2 + codec.VarintLen(len(p.EncryptionKey)) + len(p.EncryptionKey) +
			codec.VarintLen(len(p.ParentHash)) + len(p.ParentHash) + codec.VarintLen(u) + u
	}
}

// appendParentNode appends the encoding of p (§7.1), leaving out of its
// unmerged_leaves the leaves listed in the sorted slice skip.
func appendParentNode(b []byte, p *wire.ParentNode, skip []uint32) []byte {
	b = appendVarBytes(b, p.EncryptionKey)
	b = appendVarBytes(b, p.ParentHash)
	kept := len(p.UnmergedLeaves)
	if len(skip) > 0 {
		kept = 0
		for _, l := range p.UnmergedLeaves {
			if _, found := slices.BinarySearch(skip, l); !found {
				kept++
			}
		}
	}
	b = appendVarint(b, 4*kept)
	for _, l := range p.UnmergedLeaves {
		if len(skip) > 0 {
			if _, found := slices.BinarySearch(skip, l); found {
				continue
			}
		}
		b = appendUint32(b, l)
	}
	return b
}

// Clone returns an independent copy of the tree. Leaf encodings and parent
// nodes are immutable and shared, so a clone costs a copy of the node
// arrays and of the hash cache (about 6 MB and a millisecond at 50,000
// members). The clone has no open checkpoints; its set of changed nodes is
// a copy of t's.
func (t *Tree) Clone() *Tree {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := &Tree{
		suite:   t.suite,
		nh:      t.nh,
		n:       t.n,
		leaves:  slices.Clone(t.leaves),
		parents: slices.Clone(t.parents),
		filled:  slices.Clone(t.filled),
		hashes:  slices.Clone(t.hashes),
		dirty:   slices.Clone(t.dirty),
	}
	c.h.nh = t.nh
	c.changed = t.changed.clone()
	return c
}

// putLeaf stores enc at leaf l and updates the derived state that does not
// depend on history (blank bits, key index).
func (t *Tree) putLeaf(l uint32, enc []byte) {
	if t.keys != nil {
		t.keys.removeLeaf(l, t.leaves[l])
		t.keys.addLeaf(l, enc)
	}
	t.leaves[l] = enc
	t.filled.put(2*l, enc != nil)
}

// putParent stores p at parent node x, as putLeaf does.
func (t *Tree) putParent(x uint32, p *wire.ParentNode) {
	if t.keys != nil {
		t.keys.removeParent(x, t.parents[x/2])
		t.keys.addParent(x, p)
	}
	t.parents[x/2] = p
	t.filled.put(x, p != nil)
}
