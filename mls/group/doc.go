// Package group implements the MLS group state machine of RFC 9420: one
// member's view of a group, from creation or joining to the member's
// removal, with every handshake and application message in between. It is
// pure protocol: no I/O, no storage, no clock and no randomness but those
// the Config supplies. Package engine wraps it with automatic persistence.
//
// # Getting started
//
// A member is an Identity (credential and signing key) with a Config. The
// creator of a group calls Create; other clients publish key packages
// (NewKeyPackage) and are added by a commit:
//
//	alice, _ := group.Create(cfg, ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, aliceID, nil, nil)
//	bobKP, _ := group.NewKeyPackage(suite, bobID, bobCfg, nil) // publish bobKP.KeyPackage
//
//	alice.ProposeAdd(bobKP.KeyPackage)            // or CommitOptions.Proposals
//	res, _ := alice.Commit(nil)                   // res.Commit to the group, res.Welcome to Bob
//	alice.MergePendingCommit()                    // once the delivery service accepted it
//
//	bob, _ := group.Join(bobCfg, res.Welcome.Welcome, bobKP, nil)
//
// Messages are exchanged as wire.MLSMessage values. Process handles
// whatever arrives:
//
//	rm, err := bob.Process(msg)
//	switch {
//	case err != nil:                // rejected; the group is unchanged
//	case rm.ApplicationData != nil: // an application message
//	case rm.Proposal != nil:        // a proposal, now queued
//	case rm.Commit != nil:          // a staged commit: inspect, then
//		bob.MergeStagedCommit(rm.Commit)
//	}
//
// and Protect encrypts application data.
//
// # What is supported
//
//   - All seven cipher suites of RFC 9420, handshake messages as
//     PublicMessage or PrivateMessage (Config.EncryptHandshake), padding.
//   - Proposals (§12.1): Add, Update, Remove, PreSharedKey (external and
//     resumption), ReInit, GroupContextExtensions and custom types, by
//     reference (ProposeX, then a commit) or by value
//     (CommitOptions.Proposals); Leave proposes the member's own removal.
//   - Commits (§12.4) with or without an UpdatePath (always when a
//     proposal requires one, or with CommitOptions.ForcePath), the Welcome
//     for added members with or without the ratchet_tree extension
//     (Config.RatchetTreeExtension; otherwise JoinOptions.RatchetTree
//     carries the tree out of band).
//   - Every check of §12.2 (proposal list validation) and §12.4.2 (commit
//     processing), key package validation (§10.1, ValidateKeyPackage) and
//     tree validation for joiners (§12.4.3.1).
//   - External joins (§12.4.3.2): GroupInfo exports the external_pub
//     extension, JoinExternal builds the external commit, optionally
//     resyncing (removing) the joiner's old leaf.
//   - External proposals (§12.1.8) from the senders of the
//     external_senders extension (Config.ExternalSenders at creation,
//     NewExternalProposal to send one) and new_member_proposal Adds
//     (NewMemberAddProposal).
//   - PSKs (§8.4): external ones through Config.PSKs, resumption PSKs of
//     the group's own recent epochs, and the linked group's for ReInit
//     (§11.2, Group.ReInit) and branching (§11.3, Group.Branch).
//   - The exporter (ExportSecret, §8.5), the epoch authenticator (§8.7),
//     the members, the GroupContext, and a GroupInfo of the current epoch.
//   - The last_resort key package extension (type 0x000A,
//     draft-ietf-mls-extensions).
//
// # Failures
//
// A message that fails any check returns an error matching one of the
// package's sentinels with errors.Is (ErrWrongGroup, ErrWrongEpoch,
// ErrBadSignature, ErrBadMembershipTag, ErrDecryption, ErrReplay,
// ErrTooFarAhead, ErrSenderNotMember, ErrInvalidCommit, ErrUnknownProposal,
// ...), and leaves the group exactly as it was: in particular a rejected
// PrivateMessage consumes no key. No input makes the package panic.
//
// # Persistence and deletion
//
// The state is a set of records (storage.Record, in the group's scope
// but for key packages): Public ones (the GroupContext, the ratchet tree
// in tiles, transcript hashes, queued proposals) and
// KeyMaterial ones (epoch secrets, the secret tree's live node and ratchet
// secrets, kept message keys, HPKE private keys, resumption PSKs, pending
// Update keys). Records returns them all and Restore rebuilds a group
// from them. After each operation TakeChanges returns what it changed:
// records to write and records to delete, the deletions of key material
// being the secrets the protocol deleted. Key-material records are
// write-once: a secret that changes gets a new name. The deletion schedule
// (§9.2):
//
//   - decrypting a message deletes its generation's key, and every ratchet
//     or tree secret that derivation used up;
//   - an epoch change deletes the old epoch's secrets and, beyond the last
//     Config.MaxPastEpochs epochs, its sender data secret and secret tree
//     (only those are kept for late application messages; never the
//     membership key), resumption PSKs beyond Config.NumberOfResumptionPSKs,
//     HPKE keys of nodes the new tree no longer holds, the queued
//     proposals and the private keys of the member's pending Updates;
//   - merging or clearing a pending commit deletes its secrets;
//   - joining deletes the key package's private keys (client scope) unless
//     it is a last-resort key package.
//
// Record values are opaque to storage. Each is either an MLS structure in
// its RFC 9420 encoding (GroupContext, tree nodes, AuthenticatedContent,
// KeyPackage) or a MessagePack array whose first element is the version
// of that record's layout; Restore and RestoreKeyPackageBundle reject an
// unknown version, like any malformed value, with ErrCorruptState.
//
// Deleted secrets are cleared in memory too; in Go that is best effort
// (see package secret), and HPKE private keys cannot be overwritten.
//
// # What is not here
//
// Group ids must be unique among the client's groups: the caller checks
// it. Credentials are validated by Config.ValidateCredential (the
// Authentication Service); without it any credential is accepted. The
// application decides which external commits, external senders and
// resyncs to allow beyond what the RFC requires. A Group is not safe for
// concurrent use.
package group
