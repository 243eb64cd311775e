// Package treekem implements TreeKEM, the continuous group key agreement
// of MLS (RFC 9420 §7.4 to §7.6): refreshing a committer's path of the
// ratchet tree, encrypting the new path secrets to the rest of the group,
// and decrypting them on the receiving side, down to the commit secret the
// key schedule needs (§12.4.1, §12.4.2).
//
// The public tree lives in package ratchettree; this package owns the
// private side, a PrivateState per member: its leaf's HPKE private key and
// the private keys of the parent nodes on its direct path. It is kept apart
// from the public tree so that storage can treat it as key material
// (PrivateState.Nodes lists what to persist, NewPrivateState restores it).
//
// # Committing
//
// Apply the Commit's proposals to a checkpoint or clone of the tree, then:
//
//	res, err := treekem.CreateUpdatePath(tree, treekem.CreateParams{
//		Sender: myLeaf, GroupID: groupID, SigningKey: sk,
//		Excluded:     addedLeaves, // new members get their secret via the Welcome
//		GroupContext: func(treeHash []byte) ([]byte, error) { ... }, // provisional context
//	})
//	// res.Path goes in the Commit, res.CommitSecret into the key schedule,
//	// res.PathSecret(newMember) into each new member's GroupSecrets;
//	// res.State replaces the committer's PrivateState once the epoch is
//	// final.
//
// # Receiving
//
// Apply the proposals to a checkpoint or clone of the tree, then:
//
//	res, err := treekem.ProcessUpdatePath(tree, myState, treekem.ProcessParams{
//		Sender: committer, GroupID: groupID, Path: commit.Path,
//		Excluded: addedLeaves, GroupContext: ...,
//	})
//
// On success the tree is the new epoch's and res holds the commit secret
// and the receiver's new PrivateState; on error, roll the tree back. Neither
// function ever modifies a PrivateState: the caller swaps in the new one
// when it accepts the whole Commit (after the confirmation tag), so a
// rejected Commit changes nothing. A member joining through a Welcome
// builds its state with NewJoinerState.
//
// # What is checked
//
// ProcessUpdatePath checks the UpdatePath against the tree (one node per
// node of the sender's filtered direct path, one ciphertext per node of each
// copath resolution, well-formed public keys), the new leaf node's source,
// its signature and its parent hash (§7.9.2), decrypts the path secret of
// the lowest common ancestor of sender and receiver, and checks every
// public key derived from it. The rest of leaf node validation (§7.3:
// credential, capabilities, lifetime, extensions) and the uniqueness of the
// new keys across the tree (§12.4.2) are the caller's. Failures are typed:
// ErrPathLength, ErrCiphertextCount, ErrInvalidPublicKey, ErrLeafNode,
// ErrParentHashMismatch, ErrNoDecryptionKey, ErrDecryptPathSecret,
// ErrPublicKeyMismatch, ErrInvalidArgument, ErrInconsistentState. No input
// makes the package panic.
//
// # Cost
//
// Creating a path costs one key derivation per node of the filtered direct
// path, one HPKE encryption per copath resolution node (one per level in a
// full tree, more after removals) and one signature; processing one costs
// one signature verification, one HPKE decryption and one key derivation
// per node from the common ancestor up. Derivations and encryptions are
// independent and run on all cores. Work on the tree is the merge of one
// path and its rehash, O(log N) in package ratchettree, plus the copath
// resolutions, whose total size is the number of encryptions.
//
// Secrets are secret.Secret values that never print; PrivateState prints
// node indexes only. Clearing is best effort, as explained in package
// secret: HPKE private keys live in crypto/ecdh values that Go cannot
// overwrite, so Clear drops them.
package treekem
