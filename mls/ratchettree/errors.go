package ratchettree

import (
	"errors"
	"fmt"
)

// Errors returned by this package. Every error wraps one or more of them,
// so callers branch with errors.Is; an error about the content of a tree
// (from FromWire, Decode, Validate or VerifyParentHashes) also matches
// ErrInvalidTree.
var (
	// ErrInvalidTree: a ratchet tree is malformed or fails validation.
	ErrInvalidTree = errors.New("ratchettree: invalid ratchet tree")
	// ErrParentHashMismatch: a parent node is not parent-hash valid
	// (§7.9.2), or a parent_hash does not match its recomputation.
	ErrParentHashMismatch = errors.New("ratchettree: parent hash mismatch")
	// ErrTreeHashMismatch: a tree hash differs from the expected one
	// (§12.4.3.1); see CheckTreeHash.
	ErrTreeHashMismatch = errors.New("ratchettree: tree hash mismatch")
	// ErrDuplicateEncryptionKey: two nodes hold the same encryption key
	// (§7.3, §12.4.3.1).
	ErrDuplicateEncryptionKey = errors.New("ratchettree: duplicate encryption key")
	// ErrDuplicateSignatureKey: two leaves hold the same signature key (§7.3).
	ErrDuplicateSignatureKey = errors.New("ratchettree: duplicate signature key")
	// ErrBadLeafSignature: a LeafNode signature does not verify (§7.3).
	ErrBadLeafSignature = errors.New("ratchettree: bad leaf node signature")
	// ErrUnmergedLeaf: an unmerged_leaves entry is out of order, not a
	// non-blank leaf below its node, or missing from a node in between
	// (§7.1, §12.4.3.1).
	ErrUnmergedLeaf = errors.New("ratchettree: invalid unmerged leaf")
	// ErrIndexOutOfRange: a leaf or node index lies beyond the tree.
	ErrIndexOutOfRange = errors.New("ratchettree: index out of range")
	// ErrBlankLeaf: an operation needs a member at a leaf that is blank.
	ErrBlankLeaf = errors.New("ratchettree: blank leaf")
	// ErrCapabilities: a LeafNode's capabilities do not support what the
	// group or the leaf itself uses (§7.2, §7.3, §11.1).
	ErrCapabilities = errors.New("ratchettree: unsupported capabilities")
	// ErrLifetime: the current time is outside a LeafNode's lifetime, or
	// the lifetime is longer than allowed (§7.2, §7.3).
	ErrLifetime = errors.New("ratchettree: leaf node lifetime")
	// ErrCredential: a credential was rejected by the application's
	// credential validation (§5.3.1, §7.3).
	ErrCredential = errors.New("ratchettree: credential rejected")
	// ErrInvalidKey: an encryption or signature public key is malformed
	// for the cipher suite.
	ErrInvalidKey = errors.New("ratchettree: invalid public key")
	// ErrLeafNodeSource: a LeafNode has the wrong leaf_node_source for
	// where it appears (§7.3).
	ErrLeafNodeSource = errors.New("ratchettree: wrong leaf node source")
	// ErrPathLength: MergePath got a number of keys different from the
	// length of the filtered direct path (§7.6, §12.4.2).
	ErrPathLength = errors.New("ratchettree: update path length does not match the filtered direct path")
	// ErrTreeFull: adding a leaf would exceed treemath.MaxLeafCount leaves.
	ErrTreeFull = errors.New("ratchettree: tree is full")
)

// invalidf returns an error matching ErrInvalidTree and kind, with detail.
func invalidf(kind error, format string, args ...any) error {
	if kind == nil || kind == ErrInvalidTree {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidTree}, args...)...)
	}
	return fmt.Errorf("%w: %w: "+format, append([]any{ErrInvalidTree, kind}, args...)...)
}
