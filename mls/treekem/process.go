package treekem

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// ProcessParams are the inputs of ProcessUpdatePath.
type ProcessParams struct {
	// Sender is the committer's leaf in the tree after the Commit's
	// proposals.
	Sender treemath.LeafIndex
	// GroupID is the group_id of the LeafNodeTBS the new leaf node is
	// signed over (§7.2).
	GroupID []byte
	// Path is the Commit's UpdatePath.
	Path *wire.UpdatePath
	// Excluded lists the leaves added by the same Commit, left out of every
	// copath resolution (§7.6).
	Excluded []treemath.LeafIndex
	// GroupContext returns the encoded provisional GroupContext of the new
	// epoch (§12.4.2) given the tree hash of the tree with the path merged
	// in; it is the context of the path secret decryption (§7.6).
	GroupContext func(treeHash []byte) ([]byte, error)
}

// ProcessResult is the outcome of ProcessUpdatePath.
type ProcessResult struct {
	// CommitSecret is path_secret[n+1], one derivation past the root's
	// path secret (§12.4.2). The caller owns it.
	CommitSecret secret.Secret
	// State is the receiver's private state for the new epoch. The state
	// passed in is left unchanged; the caller swaps it for this one once
	// the whole Commit has been accepted, then clears the old one.
	State *PrivateState
	// CommonAncestor is the lowest node of the sender's filtered direct
	// path above the receiver, whose path secret was decrypted.
	CommonAncestor treemath.NodeIndex
	// PathSecret is the decrypted path secret of CommonAncestor. The caller
	// owns it and should clear it at once unless it needs it (§7.5 asks
	// for path secrets to be deleted after use).
	PathSecret secret.Secret
}

// Clear deletes the commit secret and the decrypted path secret. It does
// not clear State.
func (r *ProcessResult) Clear() {
	if r == nil {
		return
	}
	r.CommitSecret.Clear()
	r.PathSecret.Clear()
}

// processUpdatePath implements ProcessUpdatePath over any publicTree.
func processUpdatePath(t publicTree, state *PrivateState, p *ProcessParams) (*ProcessResult, error) {
	pr := &processor{t: t, state: state, p: p}
	// §7.5 and §12.4.2, one step at a time. Nothing is written to the tree
	// before mergePath, and state is never written.
	err := pr.run(
		pr.checkInputs,
		pr.checkShape,
		pr.checkLeaf,
		pr.verifySignature,
		pr.mergePath,
		pr.setLeaf,
		pr.groupContext,
		pr.decryptPathSecret,
		pr.deriveAndCheckKeys,
		pr.updateState,
	)
	if err != nil {
		return nil, err
	}
	return &ProcessResult{
		CommitSecret:   secret.New(pr.commit),
		State:          pr.newState,
		CommonAncestor: pr.fdp[pr.k],
		PathSecret:     secret.New(pr.decrypted),
	}, nil
}

// run runs steps in order until one fails, clearing secrets on failure.
func (pr *processor) run(steps ...func() error) error {
	for _, step := range steps {
		if err := step(); err != nil {
			pr.clear()
			return err
		}
	}
	return nil
}

// processor holds the state of one ProcessUpdatePath call.
type processor struct {
	t     publicTree
	state *PrivateState
	p     *ProcessParams
	suite *ciphersuite.Suite

	receiver    treemath.NodeIndex
	fdp, copath []treemath.NodeIndex
	k           int // index in fdp of the lowest node above the receiver
	slot        int // index of the receiver's ciphertext in Nodes[k]
	key         *ciphersuite.HPKEPrivateKey
	gc          []byte
	decrypted   []byte
	pathSecrets [][]byte // for fdp[k:]
	commit      []byte
	nodeKeys    []*ciphersuite.HPKEPrivateKey
	newState    *PrivateState
}

func (pr *processor) checkInputs() error {
	p, t, st := pr.p, pr.t, pr.state
	if st == nil || st.leafKey == nil || p.Path == nil || p.GroupContext == nil {
		return fmt.Errorf("%w: nil or cleared state, nil path or nil GroupContext callback", ErrInvalidArgument)
	}
	if pr.suite = t.Suite(); !sameSuite(pr.suite, st.suite) {
		return fmt.Errorf("%w: the tree and the private state are of different suites", ErrInvalidArgument)
	}
	n := uint64(t.LeafCount())
	if uint64(p.Sender) >= n || uint64(st.leaf) >= n {
		return fmt.Errorf("%w: sender %d or receiver %d outside a tree of %d leaves", ErrInvalidArgument, p.Sender, st.leaf, n)
	}
	if p.Sender == st.leaf {
		return fmt.Errorf("%w: the receiver is the sender", ErrInvalidArgument)
	}
	pr.receiver = leafNode(st.leaf)
	if t.IsBlank(pr.receiver) {
		return fmt.Errorf("%w: the receiver's leaf %d is blank", ErrInvalidArgument, st.leaf)
	}
	return nil
}

// checkShape checks the UpdatePath against the tree (§7.6): one node per
// node of the sender's filtered direct path, one ciphertext per node of each
// copath resolution (new leaves excluded), and well-formed public keys.
// Every member checks every node, not only the one it decrypts, so that
// all members accept or reject the same Commit. It also locates the
// receiver's ciphertext (§7.5 "decrypts the path secrets", steps 1 and 2).
func (pr *processor) checkShape() error {
	path := pr.p.Path
	var err error
	if pr.fdp, pr.copath, err = pathNodes(pr.t, pr.p.Sender); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	if len(path.Nodes) != len(pr.fdp) {
		return fmt.Errorf("%w: %d nodes, filtered direct path of leaf %d has %d", ErrPathLength, len(path.Nodes), pr.p.Sender, len(pr.fdp))
	}
	exclude := newLeafSet(pr.p.Excluded)
	if exclude.has(pr.receiver) {
		return fmt.Errorf("%w: the receiver is a leaf added by this Commit", ErrNoDecryptionKey)
	}
	pr.k = -1
	var res []treemath.NodeIndex // reused: resolutions can be long
	for i, cp := range pr.copath {
		node := &path.Nodes[i]
		if err := pr.suite.ValidateHPKEPublicKey(node.EncryptionKey); err != nil {
			return fmt.Errorf("%w: node %d: %w", ErrInvalidPublicKey, pr.fdp[i], err)
		}
		res = appendResolution(res[:0], pr.t, cp, exclude)
		if len(node.EncryptedPathSecret) != len(res) {
			return fmt.Errorf("%w: node %d has %d, the resolution of %d has %d", ErrCiphertextCount, pr.fdp[i], len(node.EncryptedPathSecret), cp, len(res))
		}
		if pr.k >= 0 || !covers(cp, pr.receiver) {
			continue
		}
		pr.k = i
		// The resolution of a node covering the receiver holds the node
		// of the receiver's direct path whose key it has, or its own leaf
		// when it is unmerged there (§4.1.1, §4.2).
		for j, r := range res {
			if covers(r, pr.receiver) {
				if key := pr.state.Key(r); key != nil {
					pr.slot, pr.key = j, key
					break
				}
			}
		}
	}
	if pr.k < 0 {
		return fmt.Errorf("%w: leaf %d is below no copath node of leaf %d", ErrNoDecryptionKey, pr.state.leaf, pr.p.Sender)
	}
	if pr.key == nil {
		return fmt.Errorf("%w: no key for the resolution of node %d", ErrNoDecryptionKey, pr.copath[pr.k])
	}
	return nil
}

// checkLeaf checks what §12.4.2 asks of the UpdatePath's leaf node beyond
// the application's leaf node validation (§7.3), except the signature:
// source commit and an encryption key that is well formed and differs from
// the sender's current one.
func (pr *processor) checkLeaf() error {
	ln := &pr.p.Path.LeafNode
	if ln.LeafNodeSource != wire.LeafNodeSourceCommit {
		return fmt.Errorf("%w: leaf_node_source is %v, not commit", ErrLeafNode, ln.LeafNodeSource)
	}
	if err := pr.suite.ValidateHPKEPublicKey(ln.EncryptionKey); err != nil {
		return fmt.Errorf("%w: leaf encryption_key: %w", ErrInvalidPublicKey, err)
	}
	if old := pr.t.EncryptionKey(leafNode(pr.p.Sender)); old != nil && bytes.Equal(old, ln.EncryptionKey) {
		return fmt.Errorf("%w: encryption_key unchanged", ErrLeafNode)
	}
	return nil
}

// verifySignature verifies the leaf node's signature over LeafNodeTBS with
// the group id and the sender's leaf index (§7.2, §7.3).
func (pr *processor) verifySignature() error {
	ln := &pr.p.Path.LeafNode
	tbs := ln.TBS(pr.p.GroupID, uint32(pr.p.Sender))
	if err := pr.suite.VerifyWithLabel(ln.SignatureKey, "LeafNodeTBS", tbs, ln.Signature); err != nil {
		return fmt.Errorf("%w: %w", ErrLeafNode, err)
	}
	return nil
}

// mergePath merges the UpdatePath's public keys into the tree and checks the
// leaf's parent hash against the one the merge computes (§7.5 "merges
// UpdatePath into the tree", §7.9.2).
func (pr *processor) mergePath() error {
	pubs := make([][]byte, len(pr.p.Path.Nodes))
	for i := range pr.p.Path.Nodes {
		pubs[i] = pr.p.Path.Nodes[i].EncryptionKey
	}
	ph, err := pr.t.MergePath(pr.p.Sender, pubs)
	if err != nil {
		return fmt.Errorf("treekem: merging the path: %w", err)
	}
	if !bytes.Equal(ph, pr.p.Path.LeafNode.ParentHash) {
		return fmt.Errorf("%w: leaf %d", ErrParentHashMismatch, pr.p.Sender)
	}
	return nil
}

// setLeaf replaces the sender's leaf with the UpdatePath's (§7.5).
func (pr *processor) setLeaf() error {
	ln := pr.p.Path.LeafNode // a copy: the tree does not alias the caller's path
	if err := pr.t.SetLeaf(pr.p.Sender, &ln); err != nil {
		return fmt.Errorf("treekem: setting the sender's leaf: %w", err)
	}
	return nil
}

// groupContext obtains the provisional GroupContext, whose tree_hash is that
// of the tree with the path merged in (§12.4.2).
func (pr *processor) groupContext() error {
	gc, err := pr.p.GroupContext(pr.t.TreeHash())
	if err != nil {
		return fmt.Errorf("treekem: provisional GroupContext: %w", err)
	}
	pr.gc = gc
	return nil
}

// decryptPathSecret decrypts the path secret of fdp[k] (§7.5 step 3, §7.6):
//
//	path_secret = DecryptWithLabel(node_private_key, "UpdatePathNode",
//	                               group_context, kem_output, ciphertext)
func (pr *processor) decryptPathSecret() error {
	ct := &pr.p.Path.Nodes[pr.k].EncryptedPathSecret[pr.slot]
	ps, err := pr.suite.DecryptWithLabel(pr.key, "UpdatePathNode", pr.gc, ct.KEMOutput, ct.Ciphertext)
	if err != nil {
		return fmt.Errorf("%w: node %d: %w", ErrDecryptPathSecret, pr.fdp[pr.k], err)
	}
	if len(ps) != pr.suite.HashLen() {
		clear(ps)
		return fmt.Errorf("%w: node %d: %d bytes, not KDF.Nh", ErrDecryptPathSecret, pr.fdp[pr.k], len(ps))
	}
	pr.decrypted = ps
	return nil
}

// deriveAndCheckKeys derives the path secrets of fdp[k:] and the commit
// secret, the node key pairs, and checks every public key against the
// UpdatePath's (§7.5 steps 4 to 6).
func (pr *processor) deriveAndCheckKeys() error {
	pr.pathSecrets, pr.commit = pathSecretChain(pr.suite, pr.decrypted, len(pr.fdp)-pr.k)
	keys, err := deriveNodeKeys(pr.suite, pr.pathSecrets)
	for _, s := range pr.pathSecrets {
		clear(s) // §7.5: delete the path and node secrets once used
	}
	if err != nil {
		return err
	}
	for i, k := range keys {
		if !equalPublicKey(k, pr.p.Path.Nodes[pr.k+i].EncryptionKey) {
			return fmt.Errorf("%w: node %d", ErrPublicKeyMismatch, pr.fdp[pr.k+i])
		}
	}
	pr.nodeKeys = keys
	return nil
}

// updateState builds the receiver's new private state (§7.5 step 7): the
// keys of the nodes from the common ancestor up are replaced by the derived
// ones, and keys of nodes that are now blank (the sender's unfiltered
// direct path nodes, and any node blanked by the Commit's proposals) are
// dropped, as §7.5 requires replaced key pairs to be deleted.
func (pr *processor) updateState() error {
	ns := pr.state.clone()
	lca := treemath.Level(pr.fdp[pr.k])
	width, err := pr.t.LeafCount().Width()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	ns.nodes = slices.DeleteFunc(ns.nodes, func(nk NodeKey) bool {
		return treemath.Level(nk.Node) >= lca || uint64(nk.Node) >= uint64(width) || pr.t.IsBlank(nk.Node)
	})
	for i, k := range pr.nodeKeys {
		ns.nodes = append(ns.nodes, NodeKey{Node: pr.fdp[pr.k+i], Key: k})
	}
	pr.newState = ns
	return nil
}

// clear deletes the secrets of a failed call.
func (pr *processor) clear() {
	clear(pr.decrypted)
	for _, s := range pr.pathSecrets {
		clear(s)
	}
	clear(pr.commit)
}
