package treekem

import (
	"fmt"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/ratchettree"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treemath"
)

// CreateUpdatePath refreshes the committer's leaf and filtered direct path
// in t and encrypts the new path secrets to the rest of the group (§7.4 to
// §7.6, §12.4.1). t must be the tree after the Commit's proposals; it is
// modified (the path is merged and the new leaf set), so the caller works on
// a checkpoint or clone. On success t is the tree of the new epoch and the
// result holds the UpdatePath, the commit secret and the committer's new
// private state; the committer's current PrivateState is not needed, and
// p.SigningKey must be the key of the new leaf node's signature_key.
func CreateUpdatePath(t *ratchettree.Tree, p CreateParams) (*CreateResult, error) {
	if t == nil {
		return nil, fmt.Errorf("%w: nil tree", ErrInvalidArgument)
	}
	return createUpdatePath(t, &p)
}

// ProcessUpdatePath applies a received UpdatePath to t and decrypts it with
// the receiver's private state (§7.5, §12.4.2). t must be the tree after the
// Commit's proposals; it is modified, so the caller works on a checkpoint or
// clone and rolls back on error. state is never modified: the result holds
// the receiver's new state.
//
// state must match t as the proposals left it. In particular, when the Commit
// applies an Update proposal this member sent, the caller first rebuilds the
// state with the leaf private key of that Update (NewPrivateState); keys of
// nodes the proposals blanked are dropped from the new state.
//
// It checks the shape of the path against t, the leaf node's source, its
// signature and its parent hash, decrypts the path secret of the lowest
// common ancestor and checks every public key derived from it. The rest of
// leaf node validation (§7.3: credential, capabilities, lifetime, extensions)
// and the uniqueness of the new public keys across the tree (§12.4.2) are
// the caller's.
func ProcessUpdatePath(t *ratchettree.Tree, state *PrivateState, p ProcessParams) (*ProcessResult, error) {
	if t == nil {
		return nil, fmt.Errorf("%w: nil tree", ErrInvalidArgument)
	}
	return processUpdatePath(t, state, &p)
}

// Check verifies that the state is consistent with the public tree t, as the
// tree invariant (§4.2) and the TreeKEM test vectors require: the leaf and
// every node the state holds a key for are inside t and not blank, and each
// key's public half is that node's encryption_key. It returns an error
// matching ErrInconsistentState otherwise.
func (ps *PrivateState) Check(t *ratchettree.Tree) error {
	if t == nil {
		return fmt.Errorf("%w: nil tree", ErrInvalidArgument)
	}
	return ps.check(t)
}

// NewJoinerState builds the private state of a member that joined at leaf
// through a Welcome (§12.4.3.1): leafKey is the private key of the
// encryption_key of its KeyPackage's leaf node and, if pathSecret (from the
// GroupSecrets) is not empty, the keys of the lowest common ancestor of its
// leaf and the committer's and of every node above it on its filtered
// direct path are derived from it. The result is checked against t (Check).
// pathSecret is neither retained nor cleared.
func NewJoinerState(t *ratchettree.Tree, leaf treemath.LeafIndex, leafKey *ciphersuite.HPKEPrivateKey, committer treemath.LeafIndex, pathSecret secret.Secret) (*PrivateState, error) {
	if t == nil {
		return nil, fmt.Errorf("%w: nil tree", ErrInvalidArgument)
	}
	return newJoinerState(t, leaf, leafKey, committer, pathSecret)
}
