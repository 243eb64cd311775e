package treekem

import "errors"

// Errors returned by this package. Each is matched with errors.Is; the
// returned errors wrap them with detail (node indexes, never key material).
var (
	// ErrInvalidArgument reports a missing or inconsistent argument: a nil
	// tree, suite, signing key or callback, a tree of another cipher suite,
	// or a leaf index outside the tree.
	ErrInvalidArgument = errors.New("treekem: invalid argument")
	// ErrInconsistentState reports a PrivateState that does not match the
	// public tree (the tree invariant of §4.2): a key for a blank node, for a node
	// off the member's direct path, or whose public key differs from the
	// node's encryption_key.
	ErrInconsistentState = errors.New("treekem: private state does not match the public tree")
	// ErrPathLength reports an UpdatePath whose number of nodes differs from
	// the length of the sender's filtered direct path (§7.6).
	ErrPathLength = errors.New("treekem: UpdatePath length differs from the sender's filtered direct path")
	// ErrCiphertextCount reports an UpdatePathNode whose number of
	// encrypted path secrets differs from the size of the copath node's
	// resolution, new leaves excluded (§7.6).
	ErrCiphertextCount = errors.New("treekem: number of encrypted path secrets differs from the copath resolution")
	// ErrInvalidPublicKey reports an encryption key in an UpdatePath that is
	// not a well-formed public key of the suite's KEM (RFC 9180 §7.1.1).
	ErrInvalidPublicKey = errors.New("treekem: malformed public key in UpdatePath")
	// ErrLeafNode reports an UpdatePath leaf node that is not of source
	// commit, whose signature does not verify, or whose encryption_key is
	// the committer's current one (§7.3, §12.4.2).
	ErrLeafNode = errors.New("treekem: invalid UpdatePath leaf node")
	// ErrParentHashMismatch reports a leaf node whose parent_hash is not the
	// parent hash of the first node of the merged filtered direct path
	// (§7.5, §7.9.2).
	ErrParentHashMismatch = errors.New("treekem: leaf node parent_hash does not match the merged path")
	// ErrNoDecryptionKey reports that the receiver is not below any copath
	// node of the UpdatePath, is one of the excluded new leaves, or holds no
	// private key for any node of the relevant resolution (§7.5).
	ErrNoDecryptionKey = errors.New("treekem: no private key to decrypt the UpdatePath")
	// ErrDecryptPathSecret reports an encrypted path secret that does not
	// decrypt, or decrypts to a value that is not KDF.Nh bytes long (§7.6).
	ErrDecryptPathSecret = errors.New("treekem: path secret does not decrypt")
	// ErrPublicKeyMismatch reports a public key derived from a decrypted
	// path secret that differs from the one the UpdatePath carries for that
	// node (§7.5).
	ErrPublicKeyMismatch = errors.New("treekem: derived public key differs from the UpdatePath's")
)
