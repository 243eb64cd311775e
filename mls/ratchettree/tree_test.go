package ratchettree

import (
	"bytes"
	"sync"
	"testing"

	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/treemath"
)

// TestInternalMath checks the package's own tree math against treemath.
func TestInternalMath(t *testing.T) {
	for _, n := range []treemath.LeafCount{1, 2, 4, 8, 64, 1024} {
		w, _ := n.Width()
		root, _ := treemath.Root(n)
		if rootOf(uint32(n)) != uint32(root) || width(uint32(n)) != w {
			t.Fatalf("n=%d: root or width differ", n)
		}
		for x := range treemath.NodeIndex(w) {
			if l, err := treemath.Left(x, n); err == nil && left(uint32(x)) != uint32(l) {
				t.Fatalf("left(%d)", x)
			}
			if r, err := treemath.Right(x, n); err == nil && right(uint32(x)) != uint32(r) {
				t.Fatalf("right(%d)", x)
			}
			if p, err := treemath.Parent(x, n); err == nil && parentOf(uint32(x)) != uint32(p) {
				t.Fatalf("parent(%d)", x)
			}
			lo, hi := span(uint32(x))
			for y := range treemath.NodeIndex(w) {
				a, _ := treemath.CommonAncestor(x, y, n)
				below := a == x
				if below != (uint32(y) >= lo && uint32(y) <= hi) {
					t.Fatalf("span(%d) = [%d, %d] disagrees about %d", x, lo, hi, y)
				}
			}
		}
	}
	b := newBitset(300)
	for _, i := range []uint32{0, 63, 64, 130, 299} {
		b.set(i)
	}
	for _, c := range []struct {
		lo, hi uint32
		want   bool
	}{{0, 0, true}, {1, 62, false}, {1, 63, true}, {65, 129, false}, {65, 200, true}, {131, 298, false}, {131, 299, true}} {
		if b.any(c.lo, c.hi) != c.want {
			t.Errorf("any(%d, %d) != %v", c.lo, c.hi, c.want)
		}
	}
	if x, ok := b.next(65, 299); !ok || x != 130 {
		t.Errorf("next = %d, %v", x, ok)
	}
	if _, ok := b.next(131, 298); ok {
		t.Error("next found a bit in an empty range")
	}
	b.setRange(1, 200, true)
	if !b.get(1) || !b.get(200) || b.get(201) || !b.any(100, 100) {
		t.Error("setRange")
	}
	for _, v := range []int{0, 63, 64, 16383, 16384, 1<<30 - 1} {
		enc := appendVarint(nil, v)
		var w codec.Writer
		w.Varint(v)
		if !bytes.Equal(enc, w.Bytes()) {
			t.Errorf("varint %d: %x, codec %x", v, enc, w.Bytes())
		}
		if got, n, ok := readVarint(enc); !ok || got != v || n != len(enc) {
			t.Errorf("readVarint(%x) = %d, %d, %v", enc, got, n, ok)
		}
	}
}

// TestAccessors checks the accessors against the decoded leaves and the
// parent hash of a fresh commit against ParentHash.
func TestAccessors(t *testing.T) {
	s := newSim(t, 1, 41)
	for range 12 {
		s.add()
	}
	s.remove(3)
	s.commit(6)
	tree := s.tree
	count := 0
	for l, ln := range tree.Members() {
		count++
		if !bytes.Equal(tree.EncryptionKey(treemath.NodeIndex(2*l)), ln.EncryptionKey) ||
			!bytes.Equal(tree.SignatureKey(l), ln.SignatureKey) || !bytes.Equal(tree.LeafBytes(l), ln.Bytes()) {
			t.Fatalf("leaf %d: accessors disagree with the decoded leaf", l)
		}
		if got, ok := tree.FindLeaf(ln); !ok || got != l {
			t.Fatalf("FindLeaf(%d) = %d, %v", l, got, ok)
		}
		if got, ok := tree.FindEncryptionKey(ln.EncryptionKey); !ok || got != treemath.NodeIndex(2*l) {
			t.Fatalf("FindEncryptionKey(leaf %d) = %d, %v", l, got, ok)
		}
		if got, ok := tree.FindSignatureKey(ln.SignatureKey); !ok || got != l {
			t.Fatalf("FindSignatureKey(leaf %d) = %d, %v", l, got, ok)
		}
	}
	if count != tree.MemberCount() || count != 12 {
		t.Fatalf("%d members iterated, MemberCount %d", count, tree.MemberCount())
	}
	if _, ok := tree.FindEncryptionKey([]byte("nobody")); ok {
		t.Error("found an unknown key")
	}
	path, _ := tree.FilteredDirectPath(6)
	copath, _ := tree.FilteredCopath(6)
	if got := tree.ParentHash(path[0], copath[0]); !bytes.Equal(got, tree.Leaf(6).ParentHash) {
		t.Error("ParentHash differs from the committed leaf's parent_hash")
	}
	for i := 1; i < len(path); i++ {
		if got := tree.ParentHash(path[i], copath[i]); !bytes.Equal(got, tree.ParentNode(path[i-1]).ParentHash) {
			t.Errorf("ParentHash of %d differs from the parent_hash of %d", path[i], path[i-1])
		}
		if x, ok := tree.FindEncryptionKey(tree.EncryptionKey(path[i])); !ok || x != path[i] {
			t.Errorf("FindEncryptionKey(node %d) = %d, %v", path[i], x, ok)
		}
	}
	if len(tree.ParentNode(path[len(path)-1]).ParentHash) != 0 {
		t.Error("the topmost node of the path has a parent hash")
	}
	rt := tree.Wire()
	enc, err := codec.Marshal(rt)
	if err != nil || !bytes.Equal(enc, tree.Bytes()) {
		t.Fatal("Wire and Bytes disagree")
	}
	var w codec.Writer
	tree.MarshalMLS(&w)
	if !bytes.Equal(w.Bytes(), enc) {
		t.Fatal("MarshalMLS and Bytes disagree")
	}
}

// TestConcurrentReads runs readers that fill the lazy caches at the same
// time; run with -race.
func TestConcurrentReads(t *testing.T) {
	g := benchTree(t, 100, true)
	tree, err := Decode(suite1(t), g.data)
	if err != nil {
		t.Fatal(err)
	}
	want := tree.RecomputeTreeHash()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			switch i {
			case 0:
				if !bytes.Equal(tree.TreeHash(), want) {
					t.Error("tree hash")
				}
			case 1:
				if err := tree.Validate(&ValidationOptions{GroupID: g.groupID}); err != nil {
					t.Error(err)
				}
			case 2:
				for x := range tree.Width() {
					tree.NodeHash(treemath.NodeIndex(x))
					tree.Resolution(treemath.NodeIndex(x))
				}
			case 3:
				for l := range tree.Members() {
					if _, ok := tree.FindSignatureKey(tree.SignatureKey(l)); !ok {
						t.Error("signature key not found")
					}
				}
			}
		})
	}
	wg.Wait()
}

// TestParallelRehash checks the parallel hashing of a freshly decoded large
// tree (and of the blank half an extension adds) against a sequential
// recomputation; run with -race.
func TestParallelRehash(t *testing.T) {
	if testing.Short() {
		t.Skip("generates a 10,000-member tree")
	}
	g := benchTree(t, 10000, true)
	tree, err := Decode(suite1(t), g.data)
	if err != nil {
		t.Fatal(err)
	}
	if tree.dirtyHint <= parallelRehashNodes {
		t.Fatal("the tree is too small to exercise the parallel path")
	}
	if !bytes.Equal(tree.TreeHash(), tree.RecomputeTreeHash()) {
		t.Fatal("parallel rehash differs from the recomputation")
	}
	// Fill every blank leaf, then extend the tree.
	ln := tree.Leaf(0)
	need := int(tree.LeafCount()) + 1 - tree.MemberCount()
	for i := range need {
		ln.EncryptionKey = []byte{byte(i), byte(i >> 8), byte(i >> 16)}
		ln.ClearRaw()
		if _, err := tree.AddLeaf(ln); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(tree.TreeHash(), tree.RecomputeTreeHash()) {
		t.Fatal("rehash after extension differs from the recomputation")
	}
}
