package conformance

import (
	"encoding/json"
	"fmt"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/ratchettree"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// verifyTreeOperations checks a tree-operations case: the tree hash of
// tree_before (RFC 9420 §7.8), then the tree after applying the Add
// (§12.1.1), Update (§12.1.2) or Remove (§12.1.3) sent by proposal_sender,
// serialized as a ratchet_tree (§12.4.3.3), and its tree hash.
func verifyTreeOperations(raw json.RawMessage) error {
	var tc struct {
		CipherSuite    uint16   `json:"cipher_suite"`
		TreeBefore     HexBytes `json:"tree_before"`
		Proposal       HexBytes `json:"proposal"`
		ProposalSender uint32   `json:"proposal_sender"`
		TreeHashBefore HexBytes `json:"tree_hash_before"`
		TreeAfter      HexBytes `json:"tree_after"`
		TreeHashAfter  HexBytes `json:"tree_hash_after"`
	}
	if err := decodeCase(raw, &tc); err != nil {
		return err
	}
	suite, err := ciphersuite.Lookup(ciphersuite.ID(tc.CipherSuite))
	if err != nil {
		return err
	}
	tree, err := ratchettree.Decode(suite, tc.TreeBefore)
	if err != nil {
		return err
	}
	if err := expectEqual("tree_hash_before", tree.TreeHash(), tc.TreeHashBefore); err != nil {
		return err
	}
	p, err := wire.Unmarshal[wire.Proposal](tc.Proposal)
	if err != nil {
		return err
	}
	switch {
	case p.ProposalType == wire.ProposalTypeAdd && p.Add != nil:
		_, err = tree.AddLeaf(&p.Add.KeyPackage.LeafNode)
	case p.ProposalType == wire.ProposalTypeUpdate && p.Update != nil:
		err = tree.UpdateLeaf(treemath.LeafIndex(tc.ProposalSender), &p.Update.LeafNode)
	case p.ProposalType == wire.ProposalTypeRemove && p.Remove != nil:
		err = tree.RemoveLeaf(treemath.LeafIndex(p.Remove.Removed))
	default:
		return fmt.Errorf("%w: proposal type %v is not add, update or remove", ErrMismatch, p.ProposalType)
	}
	if err != nil {
		return fmt.Errorf("%w: applying the proposal: %w", ErrMismatch, err)
	}
	if err := expectEqual("tree_after", tree.Bytes(), tc.TreeAfter); err != nil {
		return err
	}
	return expectEqual("tree_hash_after", tree.TreeHash(), tc.TreeHashAfter)
}
