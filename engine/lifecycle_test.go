package engine_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/storage"
)

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	alice, bob, carol := newMember(t, "alice", 1), newMember(t, "bob", 2), newMember(t, "carol", 3)
	alice.create(t, []byte("group-1"))

	res, err := alice.g.AddMembers(ctx, []*wire.KeyPackage{bob.keyPackage(t, false), carol.keyPackage(t, true)})
	if err != nil {
		t.Fatal(err)
	}
	alice.reload(t) // the pending commit survives a reload
	if !alice.g.HasPendingCommit() {
		t.Fatal("pending commit lost on reload")
	}
	if err := alice.g.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	bob.join(t, res.Welcome)
	carol.join(t, res.Welcome)
	for _, m := range []*member{alice, bob, carol} {
		m.reload(t)
	}
	mustAgree(t, alice, bob, carol)

	// Bob's key package is used up, Carol's last-resort one is not.
	if kps, _ := engine.KeyPackages(ctx, bob.store); len(kps) != 0 {
		t.Fatalf("bob still has %d key packages", len(kps))
	}
	if kps, _ := engine.KeyPackages(ctx, carol.store); len(kps) != 1 {
		t.Fatalf("carol has %d key packages, want her last-resort one", len(kps))
	}

	ct, err := bob.g.Protect(ctx, []byte("hello"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*member{alice, carol} {
		rm, err := m.g.Process(ctx, ct)
		if err != nil {
			t.Fatal(err)
		}
		if string(rm.ApplicationData) != "hello" || string(rm.AuthenticatedData) != "aad" {
			t.Fatalf("%s got %q", m.name, rm.ApplicationData)
		}
		m.reload(t)
		if _, err := m.g.Process(ctx, ct); err == nil {
			t.Fatalf("%s decrypted a message twice across a reload", m.name)
		}
	}

	// Carol commits an update; the others process and merge after a reload.
	res, err = carol.g.SelfUpdate(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := carol.g.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*member{alice, bob} {
		rm, err := m.g.Process(ctx, res.Commit)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.g.MergeStagedCommit(ctx, rm.Commit); err != nil {
			t.Fatal(err)
		}
		m.reload(t)
	}
	mustAgree(t, alice, bob, carol)

	// Delete: gone, and a second load says not found.
	if err := bob.g.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = engine.LoadGroup(ctx, bob.store, []byte("group-1"))
	if !errors.Is(err, engine.ErrGroupNotFound) {
		t.Fatalf("load after delete: %v", err)
	}
	if _, err := bob.g.Protect(ctx, []byte("x"), nil); !errors.Is(err, engine.ErrHandleBroken) {
		t.Fatalf("deleted handle: %v", err)
	}
	for _, v := range raw(t, bob.store) {
		if bytes.Contains(v, []byte("group-1")) {
			t.Fatalf("bob's store still holds a value naming the group")
		}
	}
}

func TestLoadOutcomes(t *testing.T) {
	ctx := context.Background()
	m := newMember(t, "m", 9)
	_, err := engine.LoadGroup(ctx, m.store, []byte("nope"))
	if !errors.Is(err, engine.ErrGroupNotFound) || !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("missing group: %v", err)
	}
	m.create(t, []byte("g"))
	if _, err := engine.LoadGroup(ctx, m.store, []byte("g")); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = engine.LoadGroup(cctx, m.store, []byte("g"))
	if err == nil || errors.Is(err, engine.ErrGroupNotFound) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled load: %v", err)
	}
	// Creating it again is refused.
	cfg := *m.cfg
	cfg.GroupID = []byte("g")
	if _, err := engine.NewGroup(ctx, m.store, m.signer, &cfg, m.cred); !errors.Is(err, engine.ErrGroupExists) {
		t.Fatalf("duplicate create: %v", err)
	}
}

// TestStagedCommitAcrossReload: a member that processed a commit and then
// reloaded (a crash, a conflict) before merging processes it again. With
// encrypted handshakes, storing the used handshake key at Process would
// make the second attempt a replay and strand the member.
func TestStagedCommitAcrossReload(t *testing.T) {
	ctx := context.Background()
	for _, encrypt := range []bool{false, true} {
		alice, bob := newMember(t, "alice", 81), newMember(t, "bob", 82)
		alice.cfg.EncryptHandshake, bob.cfg.EncryptHandshake = encrypt, encrypt
		alice.create(t, []byte("staged"))
		res, err := alice.g.AddMembers(ctx, []*wire.KeyPackage{bob.keyPackage(t, false)})
		if err != nil {
			t.Fatal(err)
		}
		alice.g.MergePendingCommit(ctx)
		bob.join(t, res.Welcome)
		res, err = alice.g.SelfUpdate(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		alice.g.MergePendingCommit(ctx)
		v := bob.g.Version()
		if _, err := bob.g.Process(ctx, res.Commit); err != nil {
			t.Fatal(err)
		}
		if bob.g.Version() != v {
			t.Fatalf("encrypt=%v: processing a commit stored something before its merge", encrypt)
		}
		bob.reload(t)
		rm, err := bob.g.Process(ctx, res.Commit)
		if err != nil {
			t.Fatalf("encrypt=%v: the commit again after a reload: %v", encrypt, err)
		}
		// A rejected operation in between keeps the staged commit usable.
		if _, _, err := bob.g.ProposeRemove(ctx, 99); err == nil {
			t.Fatal("removing a leaf outside the tree was accepted")
		}
		if err := bob.g.MergeStagedCommit(ctx, rm.Commit); err != nil {
			t.Fatal(err)
		}
		bob.reload(t)
		mustAgree(t, alice, bob)
	}
}

// TestExpiredKeyPackages: a committer refuses to add an expired key
// package (RFC 9420 §10.1, §7.3), and a client refuses to join with one of
// its own that expired, changing nothing in its store.
func TestExpiredKeyPackages(t *testing.T) {
	ctx := context.Background()
	alice, bob := newMember(t, "alice", 91), newMember(t, "bob", 92)
	alice.create(t, []byte("expiry"))
	old := *bob.cfg
	old.KeyPackageLifetime = time.Hour
	old.Now = func() time.Time { return testNow.Add(-48 * time.Hour) }
	kp, err := engine.NewKeyPackage(ctx, bob.store, bob.signer, &old, bob.cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := rawDigest(t, alice.store)
	if _, err := alice.g.AddMembers(ctx, []*wire.KeyPackage{kp}); !errors.Is(err, group.ErrKeyPackageExpired) {
		t.Fatalf("adding an expired key package: %v", err)
	}
	if rawDigest(t, alice.store) != before {
		t.Fatal("a refused add changed the committer's store")
	}
	// A committer whose clock is behind adds it; Bob, on time, refuses.
	late := *alice.cfg
	late.Now = old.Now
	lateAlice, err := engine.LoadGroup(ctx, alice.store, []byte("expiry"), &late)
	if err != nil {
		t.Fatal(err)
	}
	res, err := lateAlice.AddMembers(ctx, []*wire.KeyPackage{kp})
	if err != nil {
		t.Fatal(err)
	}
	before = rawDigest(t, bob.store)
	if _, err := engine.JoinGroup(ctx, bob.store, res.Welcome, bob.cfg, nil); !errors.Is(err, group.ErrKeyPackageExpired) {
		t.Fatalf("joining with an expired key package: %v", err)
	}
	if rawDigest(t, bob.store) != before {
		t.Fatal("a refused join changed the joiner's store")
	}
}

// TestBranch: a member branches a subgroup (RFC 9420 §11.3) with another
// member's new key package; the other joins with the old group as
// predecessor, and both groups live on in storage.
func TestBranch(t *testing.T) {
	ctx := context.Background()
	alice, bob := pair(t, 101)
	cfg := *alice.cfg
	cfg.GroupID = []byte("branch")
	sub, res, err := alice.g.Branch(ctx, &cfg, []*wire.KeyPackage{bob.keyPackage(t, false)})
	if err != nil {
		t.Fatal(err)
	}
	bobSub, err := engine.JoinGroup(ctx, bob.store, res.Welcome, bob.cfg, &engine.JoinOptions{Predecessor: bob.g})
	if err != nil {
		t.Fatal(err)
	}
	if !bobSub.EpochAuthenticator().Equal(sub.EpochAuthenticator()) || sub.Epoch() != 1 {
		t.Fatal("the branch's members disagree")
	}
	for _, m := range []*member{alice, bob} {
		for _, id := range []string{"pair", "branch"} {
			if _, err := engine.LoadGroup(ctx, m.store, []byte(id), m.cfg); err != nil {
				t.Fatalf("%s loads %s: %v", m.name, id, err)
			}
		}
	}
	msg, err := sub.Protect(ctx, []byte("in the branch"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rm, err := bobSub.Process(ctx, msg); err != nil || string(rm.ApplicationData) != "in the branch" {
		t.Fatalf("branch message: %v", err)
	}
}

// TestStoredPSKs: an external PSK stored once serves every group of the
// client (RFC 9420 §8.4); deleting it erases it from the backend.
func TestStoredPSKs(t *testing.T) {
	ctx := context.Background()
	alice, bob := pair(t, 121)
	id, psk := []byte("shared-psk"), []byte("0123456789abcdef0123456789abcdef")
	for _, m := range []*member{alice, bob} {
		if err := engine.StorePSK(ctx, m.store, id, secret.Copy(psk)); err != nil {
			t.Fatal(err)
		}
	}
	if err := engine.StorePSK(ctx, alice.store, id, secret.Copy(psk)); !errors.Is(err, storage.ErrWriteOnce) {
		t.Fatalf("second PSK under one id: %v", err)
	}
	alice.reload(t)
	bob.reload(t)
	prop, _, err := alice.g.ProposeExternalPSK(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.g.Process(ctx, prop); err != nil {
		t.Fatal(err)
	}
	res, err := alice.g.Commit(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	land(t, alice, res, bob)
	mustAgree(t, alice, bob)
	if !holds(t, bob.store, psk) {
		t.Fatal("the stored PSK is not in the backend")
	}
	if err := engine.DeletePSK(ctx, bob.store, id); err != nil {
		t.Fatal(err)
	}
	if holds(t, bob.store, psk) {
		t.Fatal("a deleted PSK is still in the backend")
	}
	// Without it, Bob cannot process a commit that injects it again.
	prop, _, err = alice.g.ProposeExternalPSK(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.g.Process(ctx, prop); err != nil {
		t.Fatal(err)
	}
	res, err = alice.g.Commit(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.g.Process(ctx, res.Commit); !errors.Is(err, group.ErrUnknownPSK) {
		t.Fatalf("commit of a deleted PSK: %v", err)
	}
}

// TestNewMemberProposal: a client asks to join with a stored key package
// (RFC 9420 §12.1.8, new_member_proposal); a member commits the Add by
// reference and the client joins from the Welcome.
func TestNewMemberProposal(t *testing.T) {
	ctx := context.Background()
	alice, bob := pair(t, 131)
	carol := newMember(t, "carol", 133)
	ref, err := engine.KeyPackageRef(carol.keyPackage(t, false))
	if err != nil {
		t.Fatal(err)
	}
	prop, err := engine.NewMemberAddProposal(ctx, carol.store, ref, alice.g.GroupID(), alice.g.Epoch())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*member{alice, bob} {
		if _, err := m.g.Process(ctx, prop); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
	}
	res, err := alice.g.Commit(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	land(t, alice, res, bob)
	carol.join(t, res.Welcome)
	mustAgree(t, alice, bob, carol)
	if _, err := engine.NewMemberAddProposal(ctx, carol.store, ref, alice.g.GroupID(), alice.g.Epoch()); !errors.Is(err, engine.ErrNoKeyPackage) {
		t.Fatalf("proposal from a used key package: %v", err)
	}
}
