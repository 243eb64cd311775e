package ratchettree

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mlsengine/mlsengine/internal/vectors"
	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

type hexBytes = vectors.Hex

func loadVectors[T any](t testing.TB, name string) []T {
	t.Helper()
	cases, err := vectors.Load[T](filepath.Join("..", "..", "testdata", "vectors", name))
	if err != nil {
		t.Fatal(err)
	}
	return cases
}

type validationCase struct {
	CipherSuite uint16     `json:"cipher_suite"`
	Tree        hexBytes   `json:"tree"`
	GroupID     hexBytes   `json:"group_id"`
	Resolutions [][]uint32 `json:"resolutions"`
	TreeHashes  []hexBytes `json:"tree_hashes"`
}

type operationsCase struct {
	CipherSuite    uint16   `json:"cipher_suite"`
	TreeBefore     hexBytes `json:"tree_before"`
	Proposal       hexBytes `json:"proposal"`
	ProposalSender uint32   `json:"proposal_sender"`
	TreeHashBefore hexBytes `json:"tree_hash_before"`
	TreeAfter      hexBytes `json:"tree_after"`
	TreeHashAfter  hexBytes `json:"tree_hash_after"`
}

func mustSuite(t testing.TB, id uint16) *ciphersuite.Suite {
	t.Helper()
	s, err := ciphersuite.Lookup(ciphersuite.ID(id))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// decodeBoth builds the tree both ways, from wire.RatchetTree and with
// Decode, and checks they agree.
func decodeBoth(t *testing.T, suite *ciphersuite.Suite, data []byte) *Tree {
	t.Helper()
	var rt wire.RatchetTree
	if err := codec.Unmarshal(data, &rt); err != nil {
		t.Fatal(err)
	}
	a, err := FromWire(suite, rt)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Decode(suite, data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) || !bytes.Equal(a.Bytes(), data) {
		t.Fatal("FromWire and Decode disagree, or do not round-trip")
	}
	return b
}

func TestTreeValidationVectors(t *testing.T) {
	cases := loadVectors[validationCase](t, "tree-validation.json")
	suites := map[uint16]int{}
	for i, tc := range cases {
		t.Run(fmt.Sprintf("%d-suite%d", i, tc.CipherSuite), func(t *testing.T) {
			suites[tc.CipherSuite]++
			suite := mustSuite(t, tc.CipherSuite)
			tree := decodeBoth(t, suite, tc.Tree)
			if int(tree.Width()) != len(tc.TreeHashes) || len(tc.Resolutions) != len(tc.TreeHashes) {
				t.Fatalf("width %d, vector has %d hashes and %d resolutions", tree.Width(), len(tc.TreeHashes), len(tc.Resolutions))
			}
			for n := range tc.Resolutions {
				got := tree.Resolution(treemath.NodeIndex(n))
				want := make([]treemath.NodeIndex, len(tc.Resolutions[n]))
				for j, v := range tc.Resolutions[n] {
					want[j] = treemath.NodeIndex(v)
				}
				if !slices.Equal(got, want) {
					t.Errorf("resolution(%d) = %v, want %v", n, got, want)
				}
				if h := tree.NodeHash(treemath.NodeIndex(n)); !bytes.Equal(h, tc.TreeHashes[n]) {
					t.Errorf("tree hash of node %d differs", n)
				}
			}
			if !bytes.Equal(tree.RecomputeTreeHash(), tc.TreeHashes[tree.Width()/2]) {
				t.Error("RecomputeTreeHash differs")
			}
			if err := tree.CheckTreeHash(tc.TreeHashes[tree.Width()/2]); err != nil {
				t.Error(err)
			}
			if err := tree.VerifyParentHashes(); err != nil {
				t.Error(err)
			}
			if err := tree.Validate(&ValidationOptions{GroupID: tc.GroupID}); err != nil {
				t.Error(err)
			}
			// The signatures really are checked with the group id.
			if err := tree.Validate(&ValidationOptions{GroupID: []byte("another group")}); !errors.Is(err, ErrBadLeafSignature) {
				hasGroupLeaf := false
				for _, ln := range tree.Members() {
					hasGroupLeaf = hasGroupLeaf || ln.LeafNodeSource != wire.LeafNodeSourceKeyPackage
				}
				if hasGroupLeaf {
					t.Errorf("wrong group id: %v", err)
				}
			}
		})
	}
	if len(suites) != 7 {
		t.Errorf("suites covered: %v", suites)
	}
}

func TestTreeOperationsVectors(t *testing.T) {
	cases := loadVectors[operationsCase](t, "tree-operations.json")
	for i, tc := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			suite := mustSuite(t, tc.CipherSuite)
			tree := decodeBoth(t, suite, tc.TreeBefore)
			if !bytes.Equal(tree.TreeHash(), tc.TreeHashBefore) {
				t.Fatal("tree_hash_before differs")
			}
			prop, err := wire.Unmarshal[wire.Proposal](tc.Proposal)
			if err != nil {
				t.Fatal(err)
			}
			cp := tree.Checkpoint()
			if err := applyProposal(tree, prop, treemath.LeafIndex(tc.ProposalSender)); err != nil {
				t.Fatal(err)
			}
			if got := tree.Bytes(); !bytes.Equal(got, tc.TreeAfter) {
				t.Fatal("tree_after differs")
			}
			if got, err := codec.Marshal(tree.Wire()); err != nil || !bytes.Equal(got, tc.TreeAfter) {
				t.Fatalf("Wire() encoding differs: %v", err)
			}
			if !bytes.Equal(tree.TreeHash(), tc.TreeHashAfter) {
				t.Fatal("tree_hash_after differs")
			}
			if !bytes.Equal(tree.RecomputeTreeHash(), tc.TreeHashAfter) {
				t.Fatal("recomputed tree_hash_after differs")
			}
			tree.Rollback(cp)
			if !bytes.Equal(tree.Bytes(), tc.TreeBefore) || !bytes.Equal(tree.TreeHash(), tc.TreeHashBefore) {
				t.Fatal("rollback did not restore tree_before")
			}
		})
	}
}

// applyProposal applies an Add, Update or Remove to the tree, as the
// tree-operations vectors require.
func applyProposal(tree *Tree, p *wire.Proposal, sender treemath.LeafIndex) error {
	switch p.ProposalType {
	case wire.ProposalTypeAdd:
		_, err := tree.AddLeaf(&p.Add.KeyPackage.LeafNode)
		return err
	case wire.ProposalTypeUpdate:
		return tree.UpdateLeaf(sender, &p.Update.LeafNode)
	case wire.ProposalTypeRemove:
		return tree.RemoveLeaf(treemath.LeafIndex(p.Remove.Removed))
	}
	return fmt.Errorf("unexpected proposal type %v", p.ProposalType)
}
