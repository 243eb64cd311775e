// Package jetstore is a storage.Backend on NATS JetStream: one hosted
// member's group state in two key-value buckets that many members and
// processes share.
//
//	s, err := jetstore.Open(ctx, js, jetstore.Options{Member: "alice", RootKey: root})
//	g, err := engine.LoadGroup(ctx, s, groupID)
//
// Here js is a jetstream.JetStream on a connection to the server (package
// natsrv starts an embedded one or connects by URL) and root is the
// operator's root key (LoadRootKeyFile). The package Example is the whole
// program: an embedded server, a group created on one Store and loaded
// through another on a new connection.
//
// # Buckets
//
// The snapshot bucket (DefaultSnapshotBucket) holds public records:
// <member>.g.x<hex group id>.r.<name> and the client's <member>.c.r.<name>,
// one revision each (history 1), plus a marker per scope saying which unit
// the snapshot reflects. The key bucket (DefaultKeyBucket) holds key material,
// sealed (below), under the same names, each scope's head record
// (<scope>.h), journal chunks of large units, and the member's wrapping
// keys. Both are ordinary KV buckets (`nats kv ls mls_snapshot` works), but
// jetstore creates their streams itself: a bucket made by CreateKeyValue
// denies message deletion, which rules out erasure forever, and KV
// configuration cannot allow atomic batches. Open refuses an existing key
// bucket that denies deletion or keeps history.
//
// # Units
//
// A unit's commit point is a revision of its scope's head, written with a
// compare-and-set on the head's last sequence (the version fence). The
// head carries the new version, the IDs of the last storage.RememberedUnits
// units (a retried unit is recognized in the same read that fences it, and
// a deleted group's head stays as a tombstone for that), and the unit's
// journal: its public changes and the key material it deletes. After the
// commit point the journal is carried out: the public changes go to the
// snapshot bucket in one atomic batch ending with the scope's marker
// (conditional on the marker, so a late finisher cannot overwrite newer
// records), and each dead key-material record is erased by sequence. In
// CommitIntent mode (below), where atomic batches are slow, the finisher
// instead claims the marker, writes each record conditional on its claim
// being the marker's last revision (Nats-Expected-Last-Subject-Sequence
// with -Subject), and sets the marker conditional on the claim; List of
// public records brackets its read with two reads of the marker. Load
// overlays a journal the snapshot has not caught up with and hides the key
// material it deleted, so readers see the whole unit from its commit point
// on. A writer finishes the previous journal before committing; Load and
// the sweeper finish one left by a dead writer after Options.Grace.
//
// New key material reaches the commit point in one of two ways
// (Options.Commit):
//
//   - CommitBatch: the sealed records (each conditional on its name being
//     unused: write-once) and the new head in one atomic batch. One round
//     trip; but on a single-replica file store the server stages every
//     atomic batch in a file store of its own and fsyncs it, about 5 ms per
//     unit on this project's test machine against 0.08 ms for a plain
//     publish, and the staged (sealed) bytes are left in freed blocks.
//   - CommitIntent, the default on a single-replica file store: the head is
//     marked with an intent naming the records, the records are written,
//     and the head's next revision commits. Three single-message round
//     trips. An intent whose writer died is rolled back (its records
//     erased) by the next writer after Grace, by the same unit retried, by
//     Load or by the sweeper.
//
// A unit that creates a group too large for one batch (joining a group of
// 50,000 writes about 8,700 records) marks the head as creating, writes in
// batches of 990, and commits with the head; an abandoned creation is
// cleared after Grace.
//
// Requests (round trips; see BenchmarkJetStore in package engine): Load is
// two batch direct gets (snapshot, then key bucket) for a group of up to
// 1,000 records, one more per further 1,000; Version is one; an application
// message sent or received is three to commit (intent mode) or one (batch
// mode), then one read to find the dead key's sequence and one erasure.
//
// # Secrets
//
// Every key-material value is sealed with XChaCha20-Poly1305 under a
// wrapping key, with the record's member, scope, class and name as
// associated data, so that a value moved to another name does not open.
// Wrapping keys are random, one per generation, stored in the key bucket
// sealed under a key derived (HKDF-SHA256) from the operator's root key
// (LoadRootKeyFile, which refuses a file readable by others, or
// LoadRootKeyEnv). RotateWrappingKey starts a generation, re-seals every
// live record of the member under it, and erases the old generations'
// records. No secret is ever written to the snapshot bucket, to a head or
// to a journal, and the key bucket keeps no history.
//
// Erasure is JetStream's STREAM.MSG.DELETE without no_erase
// (SecureDeleteMsg): the server overwrites the record with random bytes and
// rewrites its message block (a new file, renamed over the old one). Purge,
// plain deletion, TTL expiry and overwriting a KV key leave the bytes in the
// block until it is compacted, which may be never; jetstore never relies
// on them for key material, and names are never reused before erasure.
// Erasure costs a block rewrite: 1.4 ms with 100 KB in the block, 5.8 ms
// with 3 MB, on this project's test machine; KV streams use 4 MiB blocks.
// That bounds a key bucket to a few hundred erasures per second, all
// members together: about one per application message received.
//
// # Threat model
//
// An attacker copies the server's store directory at time T.
//
//   - Without the root key, they learn public group state (trees, contexts,
//     member identities, epochs, names of records and when they changed) and
//     nothing of any secret, live or deleted: every value in the key bucket
//     is sealed, and the wrapping keys are sealed under the root key.
//   - With the root key too (say, from the worker's host), on one server:
//     every secret live at T, and no secret jetstore erased before T from
//     the store's files (TestJetStoreForwardSecrecyAudit in package engine
//     scans every file, before and after a restart, for 13,000 deleted
//     secrets raw, in base64 and hex, and sealed with the keys held).
//     Erasure happens before Apply returns; after a crash the sweeper does
//     it within SweepInterval + Grace (40 s by default; TestSweeperFinishes).
//     What the files no longer hold may still be on the device: the old
//     block file that a rewrite replaced is freed, not overwritten, and so
//     are the staging files of atomic batches; its sealed values open with
//     the root key until the filesystem reuses the space, unless their
//     wrapping key's generation was retired by RotateWrappingKey and that
//     record's own freed copy is gone as well. Rotate often (a few times a
//     day) to bound this to the rotation period on hosts whose disks can
//     be imaged.
//   - In an R3 cluster, additionally: each replica's Raft log keeps the
//     proposal that wrote a value until the log is snapshotted and
//     compacted: TestClusterErasureWindow (make cluster) saw the sealed copy
//     of an erased secret leave all three nodes' files 3 minutes after the
//     erasure, on a quiet loopback cluster. Until then it opens with the
//     root key and the wrapping key of its generation. A lagging replica may also answer a direct get with an older
//     head; the compare-and-set on the head catches it.
//   - Server-side encryption at rest (the server's cipher and key options)
//     makes the server skip the overwrite when it deletes; jetstore's
//     sealing then is the only protection of deleted values.
//   - Memory storage keeps the original bytes in the server's heap until
//     reused; nothing reaches the disk.
//
// What jetstore does not protect: the process memory of the worker (values
// are cleared where Go allows), an attacker who can act as the member on
// the NATS account (use NATS accounts and permissions to keep members'
// subjects apart), and availability.
package jetstore
