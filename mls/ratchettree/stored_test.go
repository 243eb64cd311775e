package ratchettree

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// stored takes t apart as a storage layer keeps it, with the hashes of the
// nodes known(x) reports.
func stored(t *Tree, known func(x uint32) bool) *StoredTree {
	t.TreeHash() // every hash current
	return &StoredTree{
		LeafCount: t.n,
		Leaves:    append([][]byte(nil), t.leaves...),
		Parents:   append([]*wire.ParentNode(nil), t.parents...),
		Hashes:    append([]byte(nil), t.hashes...),
		Known:     known,
	}
}

// TestFromStored rebuilds simulated trees from their nodes with every
// hash, none, or some known: the tree hash agrees with a fresh
// computation, hashes that are known are not recomputed, and a tree built
// so keeps hashing correctly after further changes.
func TestFromStored(t *testing.T) {
	s := newSim(t, 1, 11)
	for step := range 120 {
		s.step()
		if step%10 != 9 {
			continue
		}
		want := s.tree.RecomputeTreeHash()
		for name, known := range map[string]func(uint32) bool{
			"all":     func(uint32) bool { return true },
			"none":    nil,
			"odd":     func(x uint32) bool { return x%4 != 1 },
			"top":     func(x uint32) bool { return level(x) >= 2 },
			"unblank": needed(s.tree),
		} {
			got, err := FromStored(s.suite, stored(s.tree, known))
			if err != nil {
				t.Fatalf("step %d, %s: %v", step, name, err)
			}
			if h := got.TreeHash(); !bytes.Equal(h, want) {
				t.Fatalf("step %d, %s: tree hash %x, want %x", step, name, h, want)
			}
			if err := got.Validate(&ValidationOptions{GroupID: s.groupID, Now: simNow}); err != nil {
				t.Fatalf("step %d, %s: %v", step, name, err)
			}
		}
		// Known hashes are trusted: a wrong root hash shows in the tree
		// hash, which the caller checks against the group context.
		st := stored(s.tree, func(uint32) bool { return true })
		st.Hashes[int(rootOf(st.LeafCount))*s.tree.nh] ^= 1
		got, err := FromStored(s.suite, st)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(got.TreeHash(), want) {
			t.Fatalf("step %d: a wrong stored root hash left the tree hash unchanged", step)
		}
	}
	// A rebuilt tree is a tree like any other: the simulation goes on with
	// it, checking every step, with every hash but those inside blank
	// subtrees known (as a store keeps them), or some unknown elsewhere.
	for _, known := range []func(uint32) bool{needed(s.tree), func(x uint32) bool { return x%3 != 0 }} {
		rebuilt, err := FromStored(s.suite, stored(s.tree, known))
		if err != nil {
			t.Fatal(err)
		}
		s.tree = rebuilt
		for range 40 {
			s.step()
			if got, want := s.tree.TreeHash(), s.tree.RecomputeTreeHash(); !bytes.Equal(got, want) {
				t.Fatalf("after rebuilding: cached tree hash %x, recomputed %x", got, want)
			}
			if err := s.validate(); err != nil {
				t.Fatalf("after rebuilding: %v", err)
			}
		}
	}
}

// needed is the hashes a store keeps of t: every node's but those strictly
// inside a blank subtree.
func needed(t *Tree) func(x uint32) bool {
	root := rootOf(t.n)
	return func(x uint32) bool {
		return x == root || !t.SubtreeBlank(treemath.NodeIndex(parentOf(x)))
	}
}

func TestFromStoredRejects(t *testing.T) {
	s := newSim(t, 1, 12)
	for range 30 {
		s.add()
	}
	for name, mutate := range map[string]func(*StoredTree){
		"zero leaves":      func(st *StoredTree) { st.LeafCount = 0 },
		"not a power of 2": func(st *StoredTree) { st.LeafCount = 3 },
		"short leaves":     func(st *StoredTree) { st.Leaves = st.Leaves[:len(st.Leaves)-1] },
		"short hashes":     func(st *StoredTree) { st.Hashes = st.Hashes[:10] },
		"garbage leaf":     func(st *StoredTree) { st.Leaves[1] = []byte{0x40} },
		"blank right half": func(st *StoredTree) { clear(st.Leaves[len(st.Leaves)/2:]) },
		"unmerged not below": func(st *StoredTree) {
			st.Parents[0] = &wire.ParentNode{EncryptionKey: []byte{1}, UnmergedLeaves: []uint32{9}}
		},
	} {
		st := stored(s.tree, func(uint32) bool { return true })
		mutate(st)
		if _, err := FromStored(s.suite, st); !errors.Is(err, ErrInvalidTree) {
			t.Errorf("%s: %v, want ErrInvalidTree", name, err)
		}
	}
}
