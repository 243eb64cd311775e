package treekem

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// CreateParams are the inputs of CreateUpdatePath.
type CreateParams struct {
	// Sender is the committer's leaf in the tree after the Commit's
	// proposals (for an external Commit, the leaf it was assigned).
	Sender treemath.LeafIndex
	// GroupID is the group_id signed in the new LeafNodeTBS (§7.2).
	GroupID []byte
	// SigningKey signs the new leaf node; its public key must be the leaf
	// node's signature_key.
	SigningKey *ciphersuite.SigningKey
	// LeafNode is the template of the committer's new leaf node: its
	// signature key, credential, capabilities and extensions are kept,
	// everything else is replaced (§7.5: source commit, the new encryption
	// key, the parent hash, a new signature). Nil means the sender's current
	// leaf in the tree.
	LeafNode *wire.LeafNode
	// Excluded lists the leaves added by the same Commit, which receive
	// their path secret through the Welcome and are left out of every
	// copath resolution (§7.6, §12.4.1).
	Excluded []treemath.LeafIndex
	// GroupContext returns the encoded provisional GroupContext of the new
	// epoch (§12.4.1) given the tree hash of the tree with the path merged
	// in; it is the context of every path secret encryption (§7.6).
	GroupContext func(treeHash []byte) ([]byte, error)
	// Rand supplies the fresh leaf path secret; nil means crypto/rand.
	// HPKE encapsulation draws its own randomness (see package ciphersuite).
	Rand io.Reader
}

// CreateResult is the outcome of CreateUpdatePath.
type CreateResult struct {
	// Path is the UpdatePath to put in the Commit.
	Path *wire.UpdatePath
	// CommitSecret is path_secret[n+1], one derivation past the root's
	// path secret (§12.4.1). The caller owns it and clears it after the key
	// schedule has used it.
	CommitSecret secret.Secret
	// State is the committer's private state for the new epoch: the new
	// leaf key and a key for every node of its filtered direct path.
	State *PrivateState

	sender      treemath.LeafIndex
	leafCount   treemath.LeafCount
	fdp         []treemath.NodeIndex
	pathSecrets []secret.Secret
}

// PathSecret returns a copy of the path secret that the Welcome carries to
// the member added at leaf newMember: the path secret of the lowest common
// ancestor of its leaf and the committer's (§12.4.1, §12.4.3.1). The caller
// owns the copy.
func (r *CreateResult) PathSecret(newMember treemath.LeafIndex) (secret.Secret, error) {
	if r == nil || newMember == r.sender || uint64(newMember) >= uint64(r.leafCount) {
		return secret.Secret{}, fmt.Errorf("%w: leaf %d is not another leaf of the tree", ErrInvalidArgument, newMember)
	}
	lca, err := treemath.CommonAncestor(leafNode(newMember), leafNode(r.sender), r.leafCount)
	if err != nil {
		return secret.Secret{}, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	for i, n := range r.fdp {
		if n == lca && i < len(r.pathSecrets) && !r.pathSecrets[i].IsZero() {
			return secret.Copy(r.pathSecrets[i].Bytes()), nil
		}
	}
	return secret.Secret{}, fmt.Errorf("%w: common ancestor %d of leaf %d is not on the committer's filtered direct path", ErrInvalidArgument, lca, newMember)
}

// String summarizes the result without its secrets.
func (r CreateResult) String() string {
	nodes := 0
	if r.Path != nil {
		nodes = len(r.Path.Nodes)
	}
	return fmt.Sprintf("treekem.CreateResult{sender: %d, path nodes: %d, commit secret: %v, state: %v}", r.sender, nodes, r.CommitSecret, r.State)
}

// GoString is String.
func (r CreateResult) GoString() string { return r.String() }

// Format prints String for every verb: the path secrets kept for Welcome
// messages must not reach a log line.
func (r CreateResult) Format(f fmt.State, _ rune) { fmt.Fprint(f, r.String()) }

// LogValue shows String in log/slog output.
func (r CreateResult) LogValue() slog.Value { return slog.StringValue(r.String()) }

// Clear deletes the commit secret and the path secrets kept for Welcome
// messages. It does not clear State, which the caller keeps.
func (r *CreateResult) Clear() {
	if r == nil {
		return
	}
	r.CommitSecret.Clear()
	for i := range r.pathSecrets {
		r.pathSecrets[i].Clear()
	}
	r.pathSecrets = nil
}

// createUpdatePath implements CreateUpdatePath over any publicTree.
func createUpdatePath(t publicTree, p *CreateParams) (*CreateResult, error) {
	c := &creator{t: t, p: p}
	// §7.5 and §12.4.1, one step at a time. The tree is modified from
	// mergePath on; the caller holds a checkpoint.
	for _, step := range []func() error{
		c.checkInputs,
		c.derivePathSecrets,
		c.deriveKeys,
		c.mergePath,
		c.signLeaf,
		c.groupContext,
		c.encryptPathSecrets,
	} {
		if err := step(); err != nil {
			c.clear()
			return nil, err
		}
	}
	return c.result(), nil
}

// creator holds the state of one CreateUpdatePath call.
type creator struct {
	t     publicTree
	p     *CreateParams
	suite *ciphersuite.Suite

	fdp, copath []treemath.NodeIndex
	template    *wire.LeafNode

	leafSecret  []byte
	pathSecrets [][]byte // one per node of fdp
	commit      []byte
	leafKey     *ciphersuite.HPKEPrivateKey
	nodeKeys    []*ciphersuite.HPKEPrivateKey
	leafPH      []byte
	leaf        *wire.LeafNode
	gc          []byte
	nodes       []wire.UpdatePathNode
}

func (c *creator) checkInputs() error {
	p := c.p
	c.suite = c.t.Suite()
	if c.suite == nil || p.SigningKey == nil || p.GroupContext == nil {
		return fmt.Errorf("%w: nil suite, signing key or GroupContext callback", ErrInvalidArgument)
	}
	if uint64(p.Sender) >= uint64(c.t.LeafCount()) {
		return fmt.Errorf("%w: sender leaf %d outside a tree of %d leaves", ErrInvalidArgument, p.Sender, c.t.LeafCount())
	}
	c.template = p.LeafNode
	if c.template == nil {
		if c.template = c.t.Leaf(p.Sender); c.template == nil {
			return fmt.Errorf("%w: sender leaf %d is blank and no leaf node template was given", ErrInvalidArgument, p.Sender)
		}
	}
	if !bytes.Equal(c.template.SignatureKey, p.SigningKey.PublicKey()) {
		return fmt.Errorf("%w: the signing key is not the leaf node's signature_key", ErrInvalidArgument)
	}
	var err error
	c.fdp, c.copath, err = pathNodes(c.t, p.Sender)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return nil
}

// derivePathSecrets samples the leaf's secret and derives the path secrets
// of the filtered direct path and the commit secret (§7.4, §12.4.1):
//
//	path_secret[0] = DeriveSecret(leaf_secret, "path")
//	path_secret[n] = DeriveSecret(path_secret[n-1], "path")
//	commit_secret  = DeriveSecret(path_secret[last], "path")
//
// With an empty filtered direct path (a one-member group) the commit secret
// is derived from the leaf secret.
func (c *creator) derivePathSecrets() error {
	c.leafSecret = make([]byte, c.suite.HashLen())
	r := c.p.Rand
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, c.leafSecret); err != nil {
		return fmt.Errorf("treekem: reading randomness: %w", err)
	}
	first := nextPathSecret(c.suite, c.leafSecret)
	c.pathSecrets, c.commit = pathSecretChain(c.suite, first, len(c.fdp))
	clear(first)
	return nil
}

// deriveKeys derives the leaf's key pair from leaf_node_secret =
// DeriveSecret(leaf_secret, "node") and each node's from its path secret
// (§7.4), all on the available cores.
func (c *creator) deriveKeys() error {
	keys, err := deriveNodeKeys(c.suite, append([][]byte{c.leafSecret}, c.pathSecrets...))
	if err != nil {
		return err
	}
	c.leafKey, c.nodeKeys = keys[0], keys[1:]
	clear(c.leafSecret)
	return nil
}

// mergePath blanks the sender's direct path, sets the new public keys on its
// filtered direct path and computes the parent hashes (§7.5, §7.9).
func (c *creator) mergePath() error {
	pubs := make([][]byte, len(c.nodeKeys))
	for i, k := range c.nodeKeys {
		pubs[i] = k.PublicKey()
	}
	ph, err := c.t.MergePath(c.p.Sender, pubs)
	if err != nil {
		return fmt.Errorf("treekem: merging the path: %w", err)
	}
	c.leafPH = ph
	c.nodes = make([]wire.UpdatePathNode, len(pubs))
	for i, pub := range pubs {
		c.nodes[i].EncryptionKey = pub
	}
	return nil
}

// signLeaf builds the committer's new leaf node (§7.5 "Update the leaf node
// for the sender"), signs it over LeafNodeTBS with the group id and its leaf
// index (§7.2), and puts it in the tree.
func (c *creator) signLeaf() error {
	ln := *c.template
	ln.ClearRaw()
	ln.EncryptionKey = c.leafKey.PublicKey()
	ln.LeafNodeSource = wire.LeafNodeSourceCommit
	ln.Lifetime = nil
	ln.ParentHash = c.leafPH
	ln.Signature = nil
	tbs := ln.TBS(c.p.GroupID, uint32(c.p.Sender))
	if tbs == nil {
		return fmt.Errorf("%w: leaf node too large to encode", ErrInvalidArgument)
	}
	sig, err := c.suite.SignWithLabel(c.p.SigningKey, "LeafNodeTBS", tbs)
	if err != nil {
		return fmt.Errorf("treekem: signing the leaf node: %w", err)
	}
	ln.Signature = sig
	c.leaf = &ln
	if err := c.t.SetLeaf(c.p.Sender, c.leaf); err != nil {
		return fmt.Errorf("treekem: setting the sender's leaf: %w", err)
	}
	return nil
}

// groupContext obtains the provisional GroupContext, whose tree_hash is that
// of the tree with the path merged in (§12.4.1).
func (c *creator) groupContext() error {
	gc, err := c.p.GroupContext(c.t.TreeHash())
	if err != nil {
		return fmt.Errorf("treekem: provisional GroupContext: %w", err)
	}
	c.gc = gc
	return nil
}

// encryptPathSecrets encrypts each path secret to every node of the
// resolution of the corresponding copath node, new leaves excluded (§7.5,
// §7.6):
//
//	EncryptWithLabel(node_public_key, "UpdatePathNode", group_context, path_secret)
//
// The encryptions are independent and spread over the available cores:
// after removals a resolution can hold thousands of nodes.
func (c *creator) encryptPathSecrets() error {
	exclude := newLeafSet(c.p.Excluded)
	type job struct {
		node int // index in fdp
		slot int // index in the node's resolution
		pub  []byte
	}
	var jobs []job
	var res []treemath.NodeIndex
	for i, cp := range c.copath {
		res = appendResolution(res[:0], c.t, cp, exclude)
		c.nodes[i].EncryptedPathSecret = make([]wire.HPKECiphertext, len(res))
		for j, r := range res {
			jobs = append(jobs, job{node: i, slot: j, pub: c.t.EncryptionKey(r)})
		}
	}
	return parallelFor(len(jobs), func(k int) error {
		jb := jobs[k]
		kem, ct, err := c.suite.EncryptWithLabel(jb.pub, "UpdatePathNode", c.gc, c.pathSecrets[jb.node])
		if err != nil {
			return fmt.Errorf("treekem: encrypting the path secret of node %d: %w", c.fdp[jb.node], err)
		}
		c.nodes[jb.node].EncryptedPathSecret[jb.slot] = wire.HPKECiphertext{KEMOutput: kem, Ciphertext: ct}
		return nil
	})
}

func (c *creator) result() *CreateResult {
	state := &PrivateState{suite: c.suite, leaf: c.p.Sender, leafKey: c.leafKey, nodes: make([]NodeKey, len(c.fdp))}
	secrets := make([]secret.Secret, len(c.fdp))
	for i, n := range c.fdp {
		state.nodes[i] = NodeKey{Node: n, Key: c.nodeKeys[i]}
		secrets[i] = secret.New(c.pathSecrets[i])
	}
	return &CreateResult{
		Path:         &wire.UpdatePath{LeafNode: *c.leaf, Nodes: c.nodes},
		CommitSecret: secret.New(c.commit),
		State:        state,
		sender:       c.p.Sender,
		leafCount:    c.t.LeafCount(),
		fdp:          c.fdp,
		pathSecrets:  secrets,
	}
}

// clear deletes the secrets of a failed call.
func (c *creator) clear() {
	clear(c.leafSecret)
	for _, s := range c.pathSecrets {
		clear(s)
	}
	clear(c.commit)
}
