// Package storage is the persistence boundary of mlsengine: the engine keeps
// every piece of group and client state as records in a Backend, and changes
// them only through atomic, version-fenced units. Implement Backend to keep
// MLS state in your own database; use storage/memory for tests and for
// state that lives only as long as the process; check any backend with
// storage/storagetest.
//
// # Records
//
// A record is an opaque byte value under a Key of three parts:
//
//   - Scope: GroupScope(groupID) for one group's state, or ClientScope() for
//     state that belongs to the client rather than a group.
//   - Class: Public or KeyMaterial. A backend may keep them apart (separate
//     tables, buckets, devices or encryption) but must change both in one
//     unit atomically.
//   - Name: chosen by the engine, segments of [A-Za-z0-9_=-] separated by
//     "/", such as "tree/node/17". The character set maps onto file names,
//     SQL text, NATS subjects (with "/" as ".") and URL paths unescaped.
//
// What the engine stores under which names is documented where the
// records are written: package mls/group's records.go (the group's
// records: GroupContext, ratchet tree in chunks, transcript hashes, queued
// proposals, pending commit, epoch secrets, secret tree nodes and sender
// ratchets, HPKE keys, resumption PSKs, pending-update keys; and the key
// package records) and package engine's documentation (the signature key
// pair, external PSKs, the engine's own record of each group). For
// example "context" (Public), "tree/128/3" (Public), "epoch/12/secrets"
// (KeyMaterial), "key-package/<hex ref>" (client, both classes).
//
// # Key material is write-once
//
// A put of KeyMaterial under a name that holds a record fails with
// ErrWriteOnce. When a secret changes, the engine writes the new one under a
// new name (the epoch, generation or key reference is part of the name) and
// deletes the old one in the same unit. So a backend never overwrites a
// secret in place: every secret dies by an explicit Delete or DeleteGroup,
// which the backend turns into an erasure. This is what lets stores that do
// not erase on overwrite (log-structured files, NATS JetStream, SSD-backed
// databases with MVCC) find and erase each dead secret. A name may be used
// again after its record was deleted, but engines should avoid it.
//
// Forward secrecy is the engine's schedule, carried out through units: the
// unit that records a decryption deletes the consumed generation's key, the
// unit that moves to a new epoch deletes the secrets and HPKE keys of epochs
// no longer retained, the unit that merges or clears a commit deletes the
// pending update keys, and the unit that joins a group deletes the key
// package's private keys (unless it is a last-resort key package).
//
// # Units, versions and conflicts
//
// Every operation hands the backend one Unit: all its puts and deletions,
// in the group's scope and in the client scope (joining puts the new group
// and deletes the used key package in one unit). Apply applies the whole unit
// or nothing; after a crash at any point a reader sees the whole old state or
// the whole new state.
//
// Each group has a version, which Apply returns and Load reports. A unit
// carries the version it was built on, 0 for a group that must not exist
// yet; if the stored version differs, Apply fails with ErrConflict and
// changes nothing. So changes to one group are serialized, and a stale
// handle (the group was loaded twice and the other copy advanced it, or
// another process did) cannot overwrite newer state. Versions only grow and
// are never reused for a group id, even across deletion and re-creation.
//
// A typical operation:
//
//	g, err := b.Load(ctx, groupID) // ErrGroupNotFound, or a storage failure
//	// ... decode g.Records, process the message, compute the new epoch ...
//	v, err := b.Apply(ctx, &storage.Unit{
//	    Scope:   storage.GroupScope(groupID),
//	    Version: g.Version,
//	    Puts:    changed,  // new tree nodes, context, epoch/8/secrets, ...
//	    Deletes: dead,     // epoch/5/secrets, the consumed ratchet key, ...
//	})
//	switch {
//	case errors.Is(err, storage.ErrConflict):
//	    // someone else changed the group: reload and redo from the input
//	case err != nil:
//	    // nothing was applied
//	}
//	// keep v as the handle's version for the next unit
//
// A unit with Scope ClientScope() changes client-wide records only (a new
// key package, an external PSK, a signature key) and is not fenced: two
// writers of the same Public client record race and the last one wins, while
// two creators of the same KeyMaterial name are resolved by write-once, one
// succeeding and the other failing with ErrWriteOnce.
//
// # Reading
//
// Load returns all records of a group, both classes, at one version, sorted
// (GroupRecords.Find looks one up). Its three outcomes are distinct: the
// records, ErrGroupNotFound (which also matches ErrNotFound), or another
// error. Get reads one record and List the records of a scope and class
// under a name prefix; use them for client-wide records. They are not
// snapshots: two Gets may see two different versions of a group, so read a
// group's state with Load.
//
// Values are copied in and out: changing a slice after Apply, or one that
// Load, Get or List returned, changes nothing stored. The caller owns what it
// is given, key material included; call GroupRecords.ClearKeyMaterial once it
// has been decoded.
//
// Version reads a group's version alone, in one cheap request, so that a
// cached copy of a group can learn whether it is current. GetMany reads a
// set of records in one request (the key packages a Welcome may be for).
//
// # Unknown outcomes and retries
//
// A store over a network cannot always tell whether a write landed: the
// reply can be lost after the write was made (a timeout, a dropped
// connection, a failover). Apply then answers ErrUnknownOutcome, and the
// unit was applied entirely or not at all. Every unit carries an ID the
// caller draws when it builds the unit (NewUnitID); applying the same unit
// again is recognized: the backend remembers the IDs and resulting versions
// of the last RememberedUnits units of each scope, and answers a retry of
// one of them with its version, applying nothing, instead of ErrConflict or
// ErrWriteOnce. A retry of a unit that did not land applies it. So the
// caller keeps what an operation produced (a plaintext whose key the unit
// deletes, a commit) until a retry tells, and nothing is lost or applied
// twice because a reply was.
//
// # Limits
//
// A unit holds at most MaxUnitRecords operations (a put, a delete, a prefix
// deletion, a group deletion: each counts one however many records it
// removes) and at most MaxUnitBytes bytes, a value at most MaxValueLen bytes,
// a name at most MaxNameLen bytes and a group id at most MaxGroupIDLen;
// Unit.Validate enforces them on every backend (ErrInvalidUnit), so an
// engine tested against the in-memory backend fits every backend. A unit
// that creates its group (Unit.Creates: joining, creating, copying) is the
// group's whole state and has the larger bounds MaxCreateUnitRecords and
// MaxCreateUnitBytes; a backend that cannot apply it in one atomic step
// writes its records before the group's version. Sets of
// records that grow with a group's traffic (the secret tree of an epoch, a
// ratchet per sender) are deleted with one prefix deletion ("epoch/12/"),
// which the backend carries out and erases itself. Store large structures,
// such as the ratchet tree of a big group, in pieces sized by bytes (by
// node or sub-tree) so that a commit rewrites only the pieces it changes.
//
// # Encoding
//
// This package encodes nothing: names are strings, values are opaque bytes,
// and versions are numbers the backend assigns. The engine owns the encoding
// of each record's value (MLS structures in their RFC 9420 encoding, its own
// envelopes versioned) and the stability fixtures that prove a record written
// today loads in every later version. A backend may store keys and values in
// any form (hex group ids, sealed values, subjects) as long as they come back
// byte for byte.
//
// # Implementing a backend
//
// A Backend must pass storagetest.Run under the race detector. In Apply,
// call Unit.Validate first, then check the version and write-once rules, and
// only then change anything; a unit's changes become visible to readers all
// at once. Return errors that match this package's sentinels. Copy every
// value in and out. Make deletion of KeyMaterial irrevocable as far as the
// medium allows (overwrite, or erase by sequence, or seal values under keys
// that are destroyed), including key material of units that were rejected
// after it was written, and implement Inspector so the suite and the
// engine's forward-secrecy tests can check it. State the residual risks the
// medium leaves (file-system copies, replication logs) in its documentation.
//
// The contract was designed to fit stores with per-key compare-and-swap and
// bounded atomic batches, such as NATS JetStream key-value buckets (one
// stream per class, batches of at most 1000 messages within one stream).
// Package jetstore is that backend: a head record per group in the key
// bucket is the commit point (its compare-and-set is the version fence, it
// remembers the last units' IDs and outlives a deleted group as a
// tombstone), the unit's new key material reaches it first (write-once
// names cannot clobber live state), and a journal in the head carries what
// follows: the public changes for the snapshot bucket and the key material
// to erase, finished by whoever finds it unfinished.
//
// What this package does not do: cache, encrypt, span groups in one unit,
// fence client-wide records, or offer snapshot reads other than Load.
package storage
