package conformance

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/ratchettree"
	"github.com/mlsengine/mlsengine/mls/treemath"
)

// verifyTreeValidation checks a tree-validation case: the resolution
// (RFC 9420 §4.1.1) and tree hash (§7.8) of every node of the tree, the
// parent hashes as a joiner verifies them (§7.9.2), and the signature of
// every leaf with group_id as context (§7.3), through the whole-tree
// validation of §12.4.3.1.
func verifyTreeValidation(raw json.RawMessage) error {
	var tc struct {
		CipherSuite uint16     `json:"cipher_suite"`
		Tree        HexBytes   `json:"tree"`
		GroupID     HexBytes   `json:"group_id"`
		Resolutions [][]uint32 `json:"resolutions"`
		TreeHashes  []HexBytes `json:"tree_hashes"`
	}
	if err := decodeCase(raw, &tc); err != nil {
		return err
	}
	suite, err := ciphersuite.Lookup(ciphersuite.ID(tc.CipherSuite))
	if err != nil {
		return err
	}
	tree, err := ratchettree.Decode(suite, tc.Tree)
	if err != nil {
		return err
	}
	w := int(tree.Width())
	if len(tc.Resolutions) != w || len(tc.TreeHashes) != w {
		return fmt.Errorf("%w: tree has %d nodes, the case lists %d resolutions and %d tree hashes",
			ErrMismatch, w, len(tc.Resolutions), len(tc.TreeHashes))
	}
	var res []treemath.NodeIndex
	for i := range w {
		n := treemath.NodeIndex(i)
		res = tree.AppendResolution(res[:0], n)
		if !slices.EqualFunc(res, tc.Resolutions[i], func(a treemath.NodeIndex, b uint32) bool { return uint32(a) == b }) {
			return fmt.Errorf("%w: resolutions[%d] = %v, want %v", ErrMismatch, i, res, tc.Resolutions[i])
		}
		if err := expectEqual(fmt.Sprintf("tree_hashes[%d]", i), tree.NodeHash(n), tc.TreeHashes[i]); err != nil {
			return err
		}
	}
	if err := tree.VerifyParentHashes(); err != nil {
		return fmt.Errorf("%w: parent hashes: %w", ErrMismatch, err)
	}
	if err := tree.Validate(&ratchettree.ValidationOptions{GroupID: tc.GroupID}); err != nil {
		return fmt.Errorf("%w: tree validation: %w", ErrMismatch, err)
	}
	return nil
}
