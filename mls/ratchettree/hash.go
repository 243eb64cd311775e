package ratchettree

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// Tree hashes (§7.8) are cached per node in one flat byte slice, with a
// bitset of stale ("dirty") nodes. A change marks the changed node and its
// ancestors dirty; the next read rehashes exactly the dirty nodes, bottom
// up, writing each TreeHashInput into one reused buffer and the digest
// straight into the cache, so a rehash does not allocate.
//
//	struct {
//	  NodeType node_type;
//	  select (TreeHashInput.node_type) {
//	    case leaf:   LeafNodeHashInput leaf_node;
//	    case parent: ParentNodeHashInput parent_node;
//	  };
//	} TreeHashInput;
//
//	struct {
//	    uint32 leaf_index;
//	    optional<LeafNode> leaf_node;
//	} LeafNodeHashInput;
//
//	struct {
//	    optional<ParentNode> parent_node;
//	    opaque left_hash<V>;
//	    opaque right_hash<V>;
//	} ParentNodeHashInput;

// hasher writes hash inputs into a reused buffer.
type hasher struct {
	nh  int
	buf []byte
}

// leaf writes the tree hash of leaf l holding enc (nil: blank) to dst.
func (h *hasher) leaf(dst []byte, l uint32, enc []byte) {
	b := append(h.buf[:0], byte(wire.NodeTypeLeaf))
	b = appendUint32(b, l)
	if enc == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = append(b, enc...)
	}
	sumInto(h.nh, dst, b)
	h.buf = b
}

// parent writes the tree hash of a parent node holding p (nil: blank) with
// children hashes lh and rh to dst, leaving out of p's unmerged leaves the
// sorted list skip.
func (h *hasher) parent(dst []byte, p *wire.ParentNode, lh, rh []byte, skip []uint32) {
	b := append(h.buf[:0], byte(wire.NodeTypeParent))
	if p == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = appendParentNode(b, p, skip)
	}
	b = appendVarBytes(b, lh)
	b = appendVarBytes(b, rh)
	sumInto(h.nh, dst, b)
	h.buf = b
}

// parentHash writes the parent hash (§7.9) of a node with the given
// encryption key and parent_hash, over a sibling with tree hash sibling:
//
//	struct {
//	    HPKEPublicKey encryption_key;
//	    opaque parent_hash<V>;
//	    opaque original_sibling_tree_hash<V>;
//	} ParentHashInput;
func (h *hasher) parentHash(dst, encryptionKey, parentHash, sibling []byte) {
	b := appendVarBytes(h.buf[:0], encryptionKey)
	b = appendVarBytes(b, parentHash)
	b = appendVarBytes(b, sibling)
	sumInto(h.nh, dst, b)
	h.buf = b
}

// cached returns the cached hash of node x; it is current only if x is
// not dirty.
func (t *Tree) cached(x uint32) []byte {
	o := int(x) * t.nh
	return t.hashes[o : o+t.nh : o+t.nh]
}

// rehash brings the cached hashes of x and its descendants up to date;
// t.mu is held.
func (t *Tree) rehash(x uint32) { t.rehashWith(&t.h, x) }

// rehashWith is rehash with the hasher h. A clean node's cached hash is
// current, so the walk visits only dirty nodes. Staleness is closed under
// parent (markDirty marks every ancestor of a change); a node whose hash
// is merely unknown (a tree rebuilt by FromStored) may lie below a clean
// node, but only inside a blank subtree (every node below it blank),
// whose hashes nothing reads without rehashing them first.
func (t *Tree) rehashWith(h *hasher, x uint32) {
	if !t.dirty.get(x) {
		return
	}
	if x%2 == 0 {
		h.leaf(t.cached(x), x/2, t.leaves[x/2])
	} else {
		l, r := left(x), right(x)
		t.rehashWith(h, l)
		t.rehashWith(h, r)
		h.parent(t.cached(x), t.parents[x/2], t.cached(l), t.cached(r), nil)
	}
	t.dirty.clear(x)
}

// parallelRehashNodes is the number of dirty nodes above which rehashAll
// spreads the work over the cores (a freshly decoded tree, an extension).
const parallelRehashNodes = 8192

// rehashAll brings every cached hash up to date, but those of unknown
// hash inside a blank subtree under a clean node (rehashWith); t.mu is
// held. Many dirty
// nodes are hashed in parallel: the subtrees at a level of at least 6 own
// disjoint ranges of the hash cache and whole words of the dirty bitset,
// so goroutines can clean them independently before the top is hashed.
func (t *Tree) rehashAll() {
	root := rootOf(t.n)
	workers := runtime.GOMAXPROCS(0)
	if t.dirtyHint > parallelRehashNodes && workers > 1 && level(root) >= 12 && t.dirty.get(root) {
		k := level(root) - 6 // 64 subtrees
		count := t.n >> k
		var next atomic.Uint32
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				h := hasher{nh: t.nh}
				for i := next.Add(1) - 1; i < count; i = next.Add(1) - 1 {
					t.rehashWith(&h, i<<(k+1)+1<<k-1)
				}
			})
		}
		wg.Wait()
	}
	t.rehashWith(&t.h, root)
	t.dirtyHint = 0
}

// markDirty marks x and its ancestors stale, recording for an open
// checkpoint the hash of each node that was current. It walks to the root
// even past dirty nodes: a node of unknown hash may have clean ancestors
// (see rehashWith).
func (t *Tree) markDirty(x uint32) {
	root := rootOf(t.n)
	for {
		if !t.dirty.get(x) {
			t.undo.recordHash(t, x)
			t.dirty.set(x)
			t.dirtyHint++
		}
		if x == root {
			return
		}
		x = parentOf(x)
	}
}

// TreeHash returns the tree hash of the root (§7.8), the value of
// GroupContext.tree_hash. Only nodes changed since the last call are
// rehashed. The result is a new slice.
func (t *Tree) TreeHash() []byte { return t.NodeHash(treemath.NodeIndex(rootOf(t.n))) }

// NodeHash returns the tree hash of the subtree under node n (§7.8), or nil
// if n is beyond the tree. The result is a new slice.
func (t *Tree) NodeHash(n treemath.NodeIndex) []byte {
	if uint32(n) >= width(t.n) {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if uint32(n) == rootOf(t.n) {
		t.rehashAll()
	} else {
		t.rehash(uint32(n))
	}
	return slices.Clone(t.cached(uint32(n)))
}

// RecomputeTreeHash computes the root tree hash from scratch, ignoring and
// leaving alone the cache. It exists to cross-check the cache.
func (t *Tree) RecomputeTreeHash() []byte {
	h := hasher{nh: t.nh}
	out := make([]byte, t.nh)
	t.recompute(&h, rootOf(t.n), out)
	return out
}

func (t *Tree) recompute(h *hasher, x uint32, dst []byte) {
	if x%2 == 0 {
		h.leaf(dst, x/2, t.leaves[x/2])
		return
	}
	var lh, rh [64]byte
	t.recompute(h, left(x), lh[:t.nh])
	t.recompute(h, right(x), rh[:t.nh])
	h.parent(dst, t.parents[x/2], lh[:t.nh], rh[:t.nh], nil)
}

// hashWithout writes to dst the tree hash of the subtree under x in the
// tree modified as §7.9 prescribes for original_sibling_tree_hash: every
// leaf in the sorted list skip is blanked and removed from the
// unmerged_leaves of every parent node. Subtrees that hold none of skip
// use the cache, which must be current; nothing is written to it.
func (t *Tree) hashWithout(h *hasher, x uint32, skip []uint32, dst []byte) {
	lo, hi := leafSpan(x)
	i, _ := slices.BinarySearch(skip, lo)
	j, _ := slices.BinarySearch(skip, hi+1)
	skip = skip[i:j]
	switch {
	case len(skip) == 0:
		copy(dst, t.cached(x))
	case x%2 == 0:
		h.leaf(dst, x/2, nil)
	default:
		var lh, rh [64]byte
		t.hashWithout(h, left(x), skip, lh[:t.nh])
		t.hashWithout(h, right(x), skip, rh[:t.nh])
		h.parent(dst, t.parents[x/2], lh[:t.nh], rh[:t.nh], skip)
	}
}
