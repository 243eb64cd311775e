package ratchettree

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// FuzzValidate feeds arbitrary ratchet_tree extension bodies, seeded with
// every tree of the vectors, to both decoding paths and to Validate. Nothing
// may panic; every error must be typed; a tree that decodes must re-encode
// to its input (one encoding per tree), hash the same incrementally and
// from scratch, and survive removing and re-committing a member.
func FuzzValidate(f *testing.F) {
	seeds := 0
	for _, tc := range loadVectors[validationCase](f, "tree-validation.json") {
		f.Add(byte(tc.CipherSuite), []byte(tc.Tree))
		seeds++
	}
	for _, tc := range loadVectors[operationsCase](f, "tree-operations.json") {
		f.Add(byte(tc.CipherSuite), []byte(tc.TreeBefore))
		f.Add(byte(tc.CipherSuite), []byte(tc.TreeAfter))
		seeds += 2
	}
	if seeds == 0 {
		f.Fatal("no seeds")
	}
	f.Fuzz(func(t *testing.T, suiteID byte, data []byte) {
		suite := mustSuite(t, uint16(suiteID%7+1))
		tree, err := Decode(suite, data)
		var rt wire.RatchetTree
		werr := codec.Unmarshal(data, &rt)
		var tree2 *Tree
		if werr == nil {
			tree2, werr = FromWire(suite, rt)
		}
		if (err == nil) != (werr == nil) {
			t.Fatalf("Decode: %v; wire decoding and FromWire: %v", err, werr)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidTree) || !errors.Is(werr, ErrInvalidTree) && !errors.Is(werr, codec.ErrMalformed) {
				t.Fatalf("untyped errors: %v / %v", err, werr)
			}
			return
		}
		if !bytes.Equal(tree.Bytes(), data) || !bytes.Equal(tree2.Bytes(), data) {
			t.Fatal("a decoded tree does not re-encode to its input")
		}
		if !bytes.Equal(tree.TreeHash(), tree.RecomputeTreeHash()) {
			t.Fatal("cached and recomputed tree hashes differ")
		}
		if err := tree.Validate(&ValidationOptions{GroupID: []byte("group"), Parallelism: 2}); err != nil && !errors.Is(err, ErrInvalidTree) {
			t.Fatalf("untyped validation error: %v", err)
		}
		for x := range min(tree.Width(), 64) {
			tree.Resolution(treemath.NodeIndex(x))
		}
		// Operations on whatever decoded: remove the first member, then
		// let the next one commit.
		for l := range tree.Members() {
			if err := tree.RemoveLeaf(l); err != nil {
				t.Fatal(err)
			}
			break
		}
		for l := range tree.Members() {
			path, err := tree.FilteredDirectPath(l)
			if err != nil {
				t.Fatal(err)
			}
			keys := make([][]byte, len(path))
			for i := range keys {
				keys[i] = []byte{byte(i)}
			}
			if _, err := tree.MergePath(l, keys); err != nil {
				t.Fatal(err)
			}
			break
		}
		if !bytes.Equal(tree.TreeHash(), tree.RecomputeTreeHash()) {
			t.Fatal("cached and recomputed tree hashes differ after changes")
		}
	})
}
