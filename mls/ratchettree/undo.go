package ratchettree

import (
	"slices"

	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// Checkpoints and the change set serve commit processing at scale: a
// rejected commit must leave the tree as it was, and an accepted one should
// let storage write O(log N) nodes instead of the whole tree. Both are
// driven by the same low-level setters, setLeaf and setParent, through
// which every mutation goes.

type undoKind uint8

const (
	undoLeaf   undoKind = iota + 1 // leaf idx held leaf
	undoParent                     // parent node idx held parent
	undoResize                     // the tree had idx leaves
	undoHash                       // node idx was clean with hash at hashAt
)

type undoEntry struct {
	kind   undoKind
	idx    uint32
	leaf   []byte
	parent *wire.ParentNode
	hashAt int
}

// undoLog records, while a checkpoint is open, how to reverse every change:
// node contents, resizes, and each cached hash that was current when its
// node became dirty.
type undoLog struct {
	entries []undoEntry
	hashes  []byte   // old hashes of undoHash entries
	open    []uint64 // sequence numbers of the open checkpoints, increasing
	seq     uint64
	hiWidth uint32 // the largest width since the oldest open checkpoint
}

func (u *undoLog) active() bool { return len(u.open) > 0 }

// recordHash records the current hash of the clean node x before it
// becomes dirty. Nodes at or beyond hiWidth never held a hash a checkpoint
// could restore.
func (u *undoLog) recordHash(t *Tree, x uint32) {
	if !u.active() || x >= u.hiWidth {
		return
	}
	u.entries = append(u.entries, undoEntry{kind: undoHash, idx: x, hashAt: len(u.hashes)})
	u.hashes = append(u.hashes, t.cached(x)...)
}

// Checkpoint marks the current state of the tree so that Rollback can
// restore it, in time proportional to the changes made since. Checkpoints
// nest. While any checkpoint is open the tree logs how to undo each
// change; call Release when a checkpoint is no longer needed (after the
// commit it guarded was accepted) so that the log can be dropped. Rollback
// also closes the checkpoint.
//
// Taking a checkpoint first brings the cached tree hashes up to date.
type Checkpoint struct {
	tree       *Tree
	seq        uint64
	entries    int
	hashes     int
	changedLen int
	changedGen uint64
}

// Checkpoint opens a checkpoint; see the Checkpoint type.
func (t *Tree) Checkpoint() Checkpoint {
	t.mu.Lock()
	t.rehashAll()
	t.mu.Unlock()
	u := &t.undo
	if !u.active() {
		u.entries, u.hashes = u.entries[:0], u.hashes[:0]
		u.hiWidth = width(t.n)
	}
	u.seq++
	u.open = append(u.open, u.seq)
	return Checkpoint{
		tree:       t,
		seq:        u.seq,
		entries:    len(u.entries),
		hashes:     len(u.hashes),
		changedLen: len(t.changed.list),
		changedGen: t.changed.gen,
	}
}

// closeFrom closes c and every checkpoint opened after it, reporting
// whether c was open. The log is dropped when none remains open.
func (t *Tree) closeFrom(c Checkpoint) bool {
	u := &t.undo
	if c.tree != t {
		return false
	}
	i, found := slices.BinarySearch(u.open, c.seq)
	if !found {
		return false
	}
	u.open = u.open[:i]
	if !u.active() {
		clear(u.entries) // drop references to old nodes
		u.entries, u.hashes = u.entries[:0], u.hashes[:0]
	}
	return true
}

// Release closes checkpoint c, and every checkpoint opened after it,
// without undoing anything. Releasing a closed checkpoint does nothing.
func (t *Tree) Release(c Checkpoint) { t.closeFrom(c) }

// Rollback restores the tree, its cached hashes and its change set to
// their state when c was taken, and closes c and every later checkpoint.
// It panics if c is not an open checkpoint of t: that is a bug in the
// caller, not bad input.
func (t *Tree) Rollback(c Checkpoint) {
	u := &t.undo
	if c.tree != t {
		panic("ratchettree: internal error: Rollback with a checkpoint of another tree")
	}
	if _, found := slices.BinarySearch(u.open, c.seq); !found || c.entries > len(u.entries) {
		panic("ratchettree: internal error: Rollback with a closed checkpoint")
	}
	reset := t.changed.gen != c.changedGen
	for i := len(u.entries) - 1; i >= c.entries; i-- {
		e := &u.entries[i]
		switch e.kind {
		case undoLeaf:
			t.putLeaf(e.idx, e.leaf)
			if reset {
				t.changed.mark(2 * e.idx)
			}
		case undoParent:
			t.putParent(e.idx, e.parent)
			if reset {
				t.changed.mark(e.idx)
			}
		case undoResize:
			t.resize(e.idx)
		case undoHash:
			copy(t.hashes[:cap(t.hashes)][int(e.idx)*t.nh:], u.hashes[e.hashAt:e.hashAt+t.nh])
			t.dirty.clear(e.idx)
		}
	}
	clear(u.entries[c.entries:])
	u.entries, u.hashes = u.entries[:c.entries], u.hashes[:c.hashes]
	if !reset {
		t.changed.truncate(c.changedLen)
	}
	t.closeFrom(c)
}

// setLeaf replaces leaf l, logging the change.
func (t *Tree) setLeaf(l uint32, enc []byte) {
	old := t.leaves[l]
	if old == nil && enc == nil {
		return
	}
	if t.undo.active() {
		t.undo.entries = append(t.undo.entries, undoEntry{kind: undoLeaf, idx: l, leaf: old})
	}
	t.putLeaf(l, enc)
	t.changed.mark(2 * l)
	t.markDirty(2 * l)
}

// setParent replaces parent node x, logging the change.
func (t *Tree) setParent(x uint32, p *wire.ParentNode) {
	old := t.parents[x/2]
	if old == p {
		return
	}
	if t.undo.active() {
		t.undo.entries = append(t.undo.entries, undoEntry{kind: undoParent, idx: x, parent: old})
	}
	t.putParent(x, p)
	t.changed.mark(x)
	t.markDirty(x)
}

// setLeafCount resizes the tree to n leaves, logging the change. The nodes
// a shrink drops must be blank already; the nodes a growth adds are blank
// and dirty.
func (t *Tree) setLeafCount(n uint32) {
	old := t.n
	if t.undo.active() {
		t.undo.entries = append(t.undo.entries, undoEntry{kind: undoResize, idx: old})
	}
	t.resize(n)
	if n > old {
		for x := width(old); x < width(n); x++ {
			if !t.dirty.get(x) {
				t.undo.recordHash(t, x)
				t.dirty.set(x)
				t.dirtyHint++
			}
		}
		if t.undo.active() {
			t.undo.hiWidth = max(t.undo.hiWidth, width(n))
		}
	}
}

// resize changes the leaf count to n. Capacity is kept on shrinking, and
// the hash cache keeps the bytes beyond its length, so that undoing a
// shrink finds the old hashes in place.
func (t *Tree) resize(n uint32) {
	w := width(n)
	if n < t.n {
		clear(t.leaves[n:])
		clear(t.parents[n:])
		t.leaves, t.parents = t.leaves[:n], t.parents[:n]
		t.filled.setRange(w, width(t.n)-1, false)
		t.hashes = t.hashes[:int(w)*t.nh]
		t.n = n
		return
	}
	t.leaves = growTo(t.leaves, int(n))
	t.parents = growTo(t.parents, int(n))
	t.filled = t.filled.grown(w)
	t.dirty = t.dirty.grown(w)
	t.changed.bits = t.changed.bits.grown(w)
	need := int(w) * t.nh
	if need > cap(t.hashes) {
		// The next growth doubles the need, so spare capacity would
		// never be used.
		nb := make([]byte, need)
		copy(nb, t.hashes[:cap(t.hashes)])
		t.hashes = nb
	}
	t.hashes = t.hashes[:need]
	t.n = n
}

// growTo extends s with zero values to length n.
func growTo[T any](s []T, n int) []T {
	if n <= cap(s) {
		s = s[:n]
		return s
	}
	return append(s, make([]T, n-len(s))...)
}

// changeSet is the set of nodes changed since the last ResetChanged, in
// the order first changed.
type changeSet struct {
	list []uint32
	bits bitset
	gen  uint64 // incremented by each reset
}

func (c *changeSet) mark(x uint32) {
	c.bits = c.bits.grown(x + 1)
	if !c.bits.get(x) {
		c.bits.set(x)
		c.list = append(c.list, x)
	}
}

func (c *changeSet) truncate(n int) {
	if n > len(c.list) {
		return
	}
	for _, x := range c.list[n:] {
		c.bits.clear(x)
	}
	c.list = c.list[:n]
}

func (c *changeSet) clone() changeSet {
	return changeSet{list: slices.Clone(c.list), bits: slices.Clone(c.bits), gen: c.gen}
}

// Changed returns, in increasing order, the index of every node whose
// content changed since the last ResetChanged (or since the tree was
// built): a storage layer persists these nodes and LeafCount instead of
// the whole tree. An index may lie beyond the current tree when a removal
// truncated it; such a node is gone.
func (t *Tree) Changed() []treemath.NodeIndex {
	out := make([]treemath.NodeIndex, len(t.changed.list))
	for i, x := range t.changed.list {
		out[i] = treemath.NodeIndex(x)
	}
	slices.Sort(out)
	return out
}

// ResetChanged empties the set of changed nodes, typically after storage
// persisted them.
func (t *Tree) ResetChanged() {
	t.changed.truncate(0)
	t.changed.gen++
}

// PriorSignatureKeys returns, for every leaf changed since c was taken,
// the signature key it held then (nil if it was blank), so that a storage
// layer can keep the members of the epoch c began in as a delta against
// the tree's current ones. c must be open. The keys are slices of the
// leaves' encodings, which are never modified.
func (t *Tree) PriorSignatureKeys(c Checkpoint) map[uint32][]byte {
	out := map[uint32][]byte{}
	for _, e := range t.undo.entries[c.entries:] {
		if e.kind != undoLeaf {
			continue
		}
		if _, seen := out[e.idx]; seen {
			continue // the first change holds the value at c
		}
		var k []byte
		if e.leaf != nil {
			_, k = leafKeys(e.leaf)
		}
		out[e.idx] = k
	}
	return out
}
