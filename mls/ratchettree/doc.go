// Package ratchettree implements the public ratchet tree of MLS (RFC 9420
// §4, §7): its nodes, tree hashes and parent hashes, the changes that
// proposals and commits make to it, and the validation a joiner applies to
// a received tree (§12.4.3.1). It holds no private keys; TreeKEM (package
// treekem) keeps those and calls this package for the public side.
//
// # Building a tree
//
// A joiner builds the tree from the body of a ratchet_tree extension and
// validates it before use:
//
//	tree, err := ratchettree.Decode(suite, ext.ExtensionData) // or FromWire(suite, rt)
//	if err != nil { ... }                                      // structure (§12.4.3.3)
//	if err := tree.CheckTreeHash(groupInfo.GroupContext.TreeHash); err != nil { ... }
//	err = tree.Validate(&ratchettree.ValidationOptions{
//		GroupID:                groupInfo.GroupContext.GroupID,
//		GroupContextExtensions: groupInfo.GroupContext.Extensions,
//		ValidateCredential:     as.Validate, // the application's Authentication Service
//	})
//
// Validate checks every parent hash chain, the unmerged leaves, the
// uniqueness of every encryption and signature key (with hash sets, in
// O(N)), and every leaf: signature (on all cores), keys, capabilities,
// lifetime and credential. A group's creator starts with New.
//
// # Changing a tree
//
// Proposals map to AddLeaf (§12.1.1), UpdateLeaf (§12.1.2) and RemoveLeaf
// (§12.1.3, truncating the tree). An UpdatePath is merged in two steps:
// MergePath sets the public keys of the filtered direct path and computes
// the parent hashes, returning the parent_hash the committer's new leaf
// must carry; the caller signs or checks that leaf and stores it with
// SetLeaf. A new leaf is checked with ValidateLeafNode and CheckNewLeaf
// (unique keys, credential types), both O(1) in the size of the tree.
//
// A commit is processed under a checkpoint: Checkpoint before the first
// change, Rollback if the commit is rejected (restoring the tree and its
// hash cache in time proportional to the changes), Release once it is
// accepted. Changed lists the nodes changed since ResetChanged, so that
// storage can persist O(log N) nodes per commit; Clone copies a tree when
// a second, independent version is needed.
//
// # Reading a tree
//
// TreeHash returns the root tree hash (§7.8) from a per-node cache: after
// a change only the changed paths are rehashed, without allocating.
// Resolution, FilteredDirectPath and FilteredCopath serve path encryption.
// EncryptionKey, SignatureKey and LeafBytes read nodes without allocating;
// Leaf, Members and Wire decode leaves on demand.
//
// # Representation and cost
//
// Leaves are stored as their LeafNode encodings (what the tree hash, the
// ratchet_tree extension and the leaf signature cover), parent nodes as
// immutable *wire.ParentNode values, and tree hashes in one flat array.
// A tree of 50,000 members of suite 0x0001 takes about 27 MB (plus about 4
// MB for the key index, built on first use); validating it is dominated by
// one signature verification per leaf.
//
// A Tree is not safe for concurrent mutation; read-only methods may run
// concurrently with each other. No input makes a function of this package
// panic (only Rollback does, given a checkpoint that is not open: a bug in
// the caller); errors match the package's sentinels (ErrInvalidTree and one
// per kind of failure) with errors.Is.
//
// Not covered here: the private keys of TreeKEM, the proposal-list rules of
// §12.2 (which proposals may be combined), and checks that need the
// KeyPackage around a leaf (§10.1).
package ratchettree
