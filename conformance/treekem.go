package conformance

import (
	"encoding/json"
	"fmt"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/ratchettree"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treekem"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// verifyTreeKEM follows the verification list of the TreeKEM format
// (RFC 9420 §7.4 to §7.6, §7.9, §12.4.1-2):
//
//   - build leaf_private[index] from encryption_priv and the path secrets
//     of each leaves_private entry and check it against ratchet_tree;
//   - for each update_path: check it is parent-hash valid relative to
//     ratchet_tree; let every other non-blank leaf j process it, obtaining
//     path_secrets[j] as the decrypted path secret and commit_secret; check
//     the merged tree's hash is tree_hash_after; create a new UpdatePath
//     from the sender with its signature_priv and let every other
//     non-blank leaf process it to the same commit secret.
//
// The GroupContext used as encryption context carries the tree hash of the
// tree with the path merged in, as the format's note specifies.
func verifyTreeKEM(raw json.RawMessage) error {
	var tc struct {
		CipherSuite             uint16   `json:"cipher_suite"`
		GroupID                 HexBytes `json:"group_id"`
		Epoch                   uint64   `json:"epoch"`
		ConfirmedTranscriptHash HexBytes `json:"confirmed_transcript_hash"`
		RatchetTree             HexBytes `json:"ratchet_tree"`
		LeavesPrivate           []struct {
			Index          uint32   `json:"index"`
			EncryptionPriv HexBytes `json:"encryption_priv"`
			SignaturePriv  HexBytes `json:"signature_priv"`
			PathSecrets    []struct {
				Node       uint32   `json:"node"`
				PathSecret HexBytes `json:"path_secret"`
			} `json:"path_secrets"`
		} `json:"leaves_private"`
		UpdatePaths []struct {
			Sender        uint32     `json:"sender"`
			UpdatePath    HexBytes   `json:"update_path"`
			PathSecrets   []HexBytes `json:"path_secrets"`
			CommitSecret  HexBytes   `json:"commit_secret"`
			TreeHashAfter HexBytes   `json:"tree_hash_after"`
		} `json:"update_paths"`
	}
	if err := decodeCase(raw, &tc); err != nil {
		return err
	}
	suite, err := ciphersuite.Lookup(ciphersuite.ID(tc.CipherSuite))
	if err != nil {
		return err
	}
	rt, err := wire.Unmarshal[wire.RatchetTree](tc.RatchetTree)
	if err != nil {
		return fmt.Errorf("ratchet_tree: %w", err)
	}
	tree, err := ratchettree.FromWire(suite, *rt)
	if err != nil {
		return fmt.Errorf("ratchet_tree: %w", err)
	}
	groupContext := func(treeHash []byte) ([]byte, error) {
		return encodeGroupContext(tc.CipherSuite, tc.GroupID, tc.Epoch, treeHash, tc.ConfirmedTranscriptHash)
	}

	// leaf_private[index], checked against ratchet_tree.
	states := map[treemath.LeafIndex]*treekem.PrivateState{}
	signers := map[treemath.LeafIndex]*ciphersuite.SigningKey{}
	for _, lp := range tc.LeavesPrivate {
		leafKey, err := suite.ParseHPKEPrivateKey(lp.EncryptionPriv)
		if err != nil {
			return fmt.Errorf("leaves_private[%d].encryption_priv: %w", lp.Index, err)
		}
		secrets := make([]treekem.NodePathSecret, len(lp.PathSecrets))
		for k, ps := range lp.PathSecrets {
			secrets[k] = treekem.NodePathSecret{Node: treemath.NodeIndex(ps.Node), PathSecret: secret.Copy(ps.PathSecret)}
		}
		st, err := treekem.PrivateStateFromPathSecrets(suite, treemath.LeafIndex(lp.Index), leafKey, secrets)
		for k := range secrets {
			secrets[k].PathSecret.Clear()
		}
		if err != nil {
			return fmt.Errorf("leaves_private[%d]: %w", lp.Index, err)
		}
		if err := st.Check(tree); err != nil {
			return fmt.Errorf("leaves_private[%d]: %w", lp.Index, err)
		}
		states[st.Leaf()] = st
		if signers[st.Leaf()], err = suite.ParseSigningKey(lp.SignaturePriv); err != nil {
			return fmt.Errorf("leaves_private[%d].signature_priv: %w", lp.Index, err)
		}
	}
	// receivers lists the non-blank leaves j != sender.
	receivers := func(sender treemath.LeafIndex) ([]treemath.LeafIndex, error) {
		var rs []treemath.LeafIndex
		for j := range treemath.LeafIndex(tree.LeafCount()) {
			if j == sender || tree.Leaf(j) == nil {
				continue
			}
			if states[j] == nil {
				return nil, fmt.Errorf("%w: no leaves_private entry for non-blank leaf %d", ErrMismatch, j)
			}
			rs = append(rs, j)
		}
		return rs, nil
	}

	for u, up := range tc.UpdatePaths {
		sender := treemath.LeafIndex(up.Sender)
		where := fmt.Sprintf("update_paths[%d]", u)
		path, err := wire.Unmarshal[wire.UpdatePath](up.UpdatePath)
		if err != nil {
			return fmt.Errorf("%s.update_path: %w", where, err)
		}
		rs, err := receivers(sender)
		if err != nil {
			return err
		}
		// One entry per leaf, so that a shortened list cannot hide the
		// path secret of a receiver.
		if n := tree.LeafCount(); len(up.PathSecrets) != int(n) {
			return fmt.Errorf("%w: %s.path_secrets has %d entries, the tree %d leaves", ErrMismatch, where, len(up.PathSecrets), n)
		}

		// Parent-hash validity relative to ratchet_tree, and the merged
		// tree's hash.
		merged := tree.Clone()
		keys := make([][]byte, len(path.Nodes))
		for k := range path.Nodes {
			keys[k] = path.Nodes[k].EncryptionKey
		}
		ph, err := merged.MergePath(sender, keys)
		if err != nil {
			return fmt.Errorf("%s: merging: %w", where, err)
		}
		if err := expectEqual(where+" leaf parent_hash", ph, path.LeafNode.ParentHash); err != nil {
			return err
		}
		ln := path.LeafNode
		if err := merged.SetLeaf(sender, &ln); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if err := merged.VerifyParentHashes(); err != nil {
			return fmt.Errorf("%w: %s: merged tree not parent-hash valid: %w", ErrMismatch, where, err)
		}
		if err := expectEqual(where+".tree_hash_after", merged.TreeHash(), up.TreeHashAfter); err != nil {
			return err
		}

		// Every other non-blank leaf processes update_path.
		for _, j := range rs {
			tr := tree.Clone()
			out, err := treekem.ProcessUpdatePath(tr, states[j], treekem.ProcessParams{
				Sender: sender, GroupID: tc.GroupID, Path: path, GroupContext: groupContext,
			})
			if err != nil {
				return fmt.Errorf("%s: leaf %d: %w", where, j, err)
			}
			var want []byte
			if int(j) < len(up.PathSecrets) {
				want = up.PathSecrets[j]
			}
			err = expectSecret(fmt.Sprintf("%s.path_secrets[%d]", where, j), out.PathSecret, want)
			if err == nil {
				err = expectSecret(where+".commit_secret", out.CommitSecret, up.CommitSecret)
			}
			if err == nil {
				err = expectEqual(fmt.Sprintf("%s tree hash at leaf %d", where, j), tr.TreeHash(), up.TreeHashAfter)
			}
			out.Clear()
			out.State.Clear()
			if err != nil {
				return err
			}
		}

		// A new UpdatePath from the sender, processed by every other
		// non-blank leaf to the same commit secret.
		st := tree.Clone()
		created, err := treekem.CreateUpdatePath(st, treekem.CreateParams{
			Sender: sender, GroupID: tc.GroupID, SigningKey: signers[sender], GroupContext: groupContext,
		})
		if err != nil {
			return fmt.Errorf("%s: creating a new UpdatePath: %w", where, err)
		}
		enc, err := wire.Marshal(created.Path)
		if err != nil {
			return err
		}
		for _, j := range rs {
			newPath, err := wire.Unmarshal[wire.UpdatePath](enc)
			if err != nil {
				return fmt.Errorf("%s: new UpdatePath: %w", where, err)
			}
			tr := tree.Clone()
			out, err := treekem.ProcessUpdatePath(tr, states[j], treekem.ProcessParams{
				Sender: sender, GroupID: tc.GroupID, Path: newPath, GroupContext: groupContext,
			})
			if err != nil {
				return fmt.Errorf("%s: leaf %d processing the new UpdatePath: %w", where, j, err)
			}
			err = expectSecret(fmt.Sprintf("%s new commit secret at leaf %d", where, j), out.CommitSecret, created.CommitSecret.Bytes())
			out.Clear()
			out.State.Clear()
			if err != nil {
				return err
			}
		}
		created.Clear()
		created.State.Clear()
	}
	return nil
}
