// Package engine is the group API of mlsengine: MLS groups (package
// mls/group) whose every state change is persisted automatically, as one
// atomic unit, in a storage.Backend.
//
// # Getting started
//
// Example (in example_test.go) is the whole program: keys and credentials,
// a group, a member added from its key package, a message, a reload. In
// short, with errors checked:
//
//	cfg := &engine.Config{}
//	cfg.RatchetTreeExtension = true // the Welcome carries the tree; or pass it in JoinOptions
//	alice, err := engine.NewGroup(ctx, aliceStore, aliceKey, cfg, aliceCred)
//	kp, err := engine.NewKeyPackage(ctx, bobStore, bobKey, cfg, bobCred, nil)
//	res, err := alice.AddMembers(ctx, []*wire.KeyPackage{kp}) // send res.Commit, res.Welcome
//	err = alice.MergePendingCommit(ctx)                        // once the delivery service took it
//	bob, err := engine.JoinGroup(ctx, bobStore, res.Welcome, cfg, nil)
//	ct, err := alice.Protect(ctx, []byte("hi"), nil)
//	rm, err := bob.Process(ctx, ct) // rm.ApplicationData is "hi"
//
// Later, in another process: engine.LoadGroup(ctx, bobStore, groupID).
//
// # Persistence
//
// Every method that changes a group hands the backend one storage.Unit
// holding all the operation's writes and deletions (group records, and the
// client records it touches: joining deletes the used key package in the
// same unit), fenced by the group's version. The result of an operation
// (a ciphertext, a commit, a plaintext) is returned only once its unit is
// stored, so that a crash can never make the member reuse a key or forget a
// state it already revealed. After a crash at any point, LoadGroup sees the
// state before or after the operation, never a mix.
//
// The unit's deletions are the protocol's forward-secrecy schedule (RFC
// 9420 §9.2, and package group's documentation): the key of every decrypted
// message, the secrets of epochs beyond Config.MaxPastEpochs, resumption
// PSKs beyond Config.NumberOfResumptionPSKs, HPKE keys the tree no longer
// uses, pending Update keys, used key packages. The backend erases them.
//
// # Concurrency and failures
//
// A Group handle is safe for concurrent use; its operations are
// serialized. Two handles of one group (loaded twice, or in two processes)
// are fenced by the version: the handle whose write comes second fails with
// an error matching ErrConflict and reloads the stored state, so the caller
// can redo the operation on the newest state. Any failed write reloads the
// handle; if even that fails, the handle is unusable (ErrHandleBroken) and
// the caller loads the group again.
//
// An operation the protocol rejects (bad input: a message of another group
// or epoch, a bad signature, a replay, an invalid commit, ...) returns the
// error of package group (match it with errors.Is against group.ErrWrongEpoch
// and the other sentinels) and writes nothing.
//
// # Records
//
// Besides the records of package group, the engine keeps:
//
//	Scope   Class        Name               Value (msgpack array, element 0 the version)
//	group   Public       engine             [1, suite uint, signer str: hex SHA-256 of the signature public key]
//	client  KeyMaterial  signature/<hex>    [1, suite uint, private key bin]
//	client  KeyMaterial  psk/<hex>          [1, psk_id bin, psk bin]: an external PSK (StorePSK),
//	                                        named by the SHA-256 of its psk_id
//
// The signature key is stored once per client and shared by the groups and
// key packages that use it; DeleteSignatureKey removes it. External PSKs
// stored with StorePSK serve every group of the client: a group resolves
// an external PSK from Config.PSKs first, then from the store.
package engine
