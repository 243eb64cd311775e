package engine_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// flip returns msg's encoding with the byte at i (negative: from the end)
// changed, decoded again.
func flip(t *testing.T, msg *wire.MLSMessage, i int) []byte {
	t.Helper()
	b := msg.Bytes()
	if i < 0 {
		i += len(b)
	}
	b[i] ^= 0x01
	return b
}

// TestBadInputChangesNothing sends every kind of bad input to a member and
// checks that it gets the right typed error and that its backend's raw
// contents stay byte for byte the same (RFC 9420 §6, §9.2, §12.4.2 and
// §15.3 define what is bad). The §12.2 rules on forged commits (duplicate
// adds, removing a blank leaf, ...) need a forging hook that only package
// group's tests have; TestNegativeCommits there checks them against a
// digest of the group's records, which are exactly what the engine stores.
func TestBadInputChangesNothing(t *testing.T) { badInput(t, newMember) }

// TestBadInputChangesNothingJetStore is the same with jetstore backends,
// whose raw contents are the server's files on disk.
func TestBadInputChangesNothingJetStore(t *testing.T) { badInput(t, jetMembers(t)) }

func badInput(t *testing.T, newMember memberMaker) {
	ctx := context.Background()
	alice, bob, carol, dave := newMember(t, "alice", 11), newMember(t, "bob", 12), newMember(t, "carol", 13), newMember(t, "dave", 14)
	carol.cfg.MaxForwardDistance = 8
	ds := newMember(t, "delivery-service", 15) // an external sender
	alice.cfg.ExternalSenders = []wire.ExternalSender{{SignatureKey: ds.signer.PublicKey(), Credential: ds.cred}}
	alice.create(t, []byte("bad-input"))
	res, err := alice.g.AddMembers(ctx, []*wire.KeyPackage{bob.keyPackage(t, false), carol.keyPackage(t, false), dave.keyPackage(t, false)})
	if err != nil {
		t.Fatal(err)
	}
	alice.g.MergePendingCommit(ctx)
	for _, m := range []*member{bob, carol, dave} {
		m.join(t, res.Welcome)
	}
	oldCommit, firstWelcome := res.Commit, res.Welcome
	// The first Welcome without carol's entry (the second: she was added
	// second), for a Welcome to none of her key packages.
	w := *firstWelcome.Welcome
	w.Secrets = []wire.EncryptedGroupSecrets{w.Secrets[0], w.Secrets[2]}
	notForCarol := &wire.MLSMessage{Version: firstWelcome.Version, WireFormat: firstWelcome.WireFormat, Welcome: &w}

	// Epoch 2: Alice updates; everyone merges.
	res, err = alice.g.SelfUpdate(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	land(t, alice, res, bob, carol, dave)

	// Inputs.
	app, _ := bob.g.Protect(ctx, []byte("once"), nil)
	if _, err := carol.g.Process(ctx, app); err != nil {
		t.Fatal(err)
	}
	fresh, _ := alice.g.Protect(ctx, []byte("fresh"), nil)
	var far *wire.MLSMessage
	for range 20 {
		far, _ = bob.g.Protect(ctx, []byte("far"), nil)
	}
	other := newMember(t, "other", 16)
	other.create(t, []byte("another-group"))
	foreign, _ := other.g.Protect(ctx, []byte("x"), nil)
	prop, _, err := bob.g.ProposeCustom(ctx, 0xF0F0, []byte("body"))
	if err != nil {
		t.Fatal(err)
	}
	ext, err := group.NewExternalProposal(engine.DefaultSuite, []byte("bad-input"), alice.g.Epoch(),
		group.ExternalSenderKey{Index: 0, SigningKey: ds.signer},
		&wire.Proposal{ProposalType: wire.ProposalTypeRemove, Remove: &wire.Remove{Removed: uint32(dave.g.OwnLeafIndex())}})
	if err != nil {
		t.Fatal(err)
	}
	hidden, _, err := alice.g.ProposeRemove(ctx, dave.g.OwnLeafIndex()) // never delivered
	if err != nil {
		t.Fatal(err)
	}
	byRef, err := alice.g.Commit(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	alice.g.ClearPendingCommit(ctx)
	// Dave, about to be removed, sends a proposal in the epoch he still has.
	daveProp, _, err := dave.g.ProposeCustom(ctx, 0xF0F0, []byte("dave"))
	if err != nil {
		t.Fatal(err)
	}
	removal, err := alice.g.Commit(ctx, nil) // the Remove of Dave, by reference
	if err != nil {
		t.Fatal(err)
	}
	alice.g.MergePendingCommit(ctx)
	afterRemoval, _ := alice.g.Protect(ctx, []byte("not for dave"), nil)

	cases := []struct {
		name string
		to   *member
		in   func() error
		want error
	}{
		{"message of another group", carol, func() error { _, err := carol.g.Process(ctx, foreign); return err }, group.ErrWrongGroup},
		{"commit of a past epoch", carol, func() error { _, err := carol.g.Process(ctx, oldCommit); return err }, group.ErrWrongEpoch},
		{"replayed application message", carol, func() error { _, err := carol.g.Process(ctx, app); return err }, group.ErrReplay},
		{"generation too far ahead", carol, func() error { _, err := carol.g.Process(ctx, far); return err }, group.ErrTooFarAhead},
		{"tampered ciphertext", carol, func() error { _, err := carol.g.ProcessBytes(ctx, flip(t, fresh, -3)); return err }, group.ErrDecryption},
		{"bad membership tag", carol, func() error { _, err := carol.g.ProcessBytes(ctx, flip(t, prop, -1)); return err }, group.ErrBadMembershipTag},
		{"bad signature", carol, func() error { _, err := carol.g.ProcessBytes(ctx, flip(t, ext, -1)); return err }, group.ErrBadSignature},
		{"malformed bytes", carol, func() error { _, err := carol.g.ProcessBytes(ctx, []byte{0, 1, 0, 1, 0xff}); return err }, group.ErrMalformed},
		{"proposal by reference never received", carol, func() error { _, err := carol.g.Process(ctx, byRef.Commit); return err }, group.ErrUnknownProposal},
		{"truncated commit", carol, func() error {
			b := byRef.Commit.Bytes()
			_, err := carol.g.ProcessBytes(ctx, b[:len(b)-10])
			return err
		}, group.ErrMalformed},
		{"unknown group", carol, func() error { _, err := engine.LoadGroup(ctx, carol.store, []byte("no-such-group")); return err }, engine.ErrGroupNotFound},
		{"welcome for none of our key packages", carol, func() error { _, err := engine.JoinGroup(ctx, carol.store, notForCarol, carol.cfg, nil); return err }, engine.ErrNoKeyPackage},
		{"welcome joined before", carol, func() error {
			g, err := engine.JoinGroup(ctx, carol.store, firstWelcome, carol.cfg, nil)
			if err == nil && (!bytes.Equal(g.GroupID(), carol.g.GroupID()) || g.Epoch() != carol.g.Epoch()) {
				return errors.New("joining with the same Welcome again did not give the joined group")
			}
			return err
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, epoch := rawDigest(t, c.to.store), c.to.g.Epoch()
			err := c.in()
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if rawDigest(t, c.to.store) != before {
				t.Fatal("the backend changed")
			}
			if c.to.g.Epoch() != epoch {
				t.Fatal("the epoch changed")
			}
		})
	}

	// After all that, Carol still processes the removal and reads Alice.
	if _, err := carol.g.Process(ctx, hidden); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.g.Process(ctx, daveProp); err != nil {
		t.Fatalf("dave's proposal in the epoch he was in: %v", err)
	}
	rm, err := carol.g.Process(ctx, removal.Commit)
	if err != nil {
		t.Fatal(err)
	}
	if err := carol.g.MergeStagedCommit(ctx, rm.Commit); err != nil {
		t.Fatal(err)
	}
	if rm, err := carol.g.Process(ctx, afterRemoval); err != nil || string(rm.ApplicationData) != "not for dave" {
		t.Fatalf("carol after removal: %v", err)
	}

	// Dave: a handshake message of his, now from a past epoch, and a
	// message of the epoch he was removed from, both rejected unchanged.
	t.Run("proposal of a removed member", func(t *testing.T) {
		before := rawDigest(t, carol.store)
		if _, err := carol.g.Process(ctx, daveProp); !errors.Is(err, group.ErrWrongEpoch) {
			t.Fatalf("got %v", err)
		}
		if rawDigest(t, carol.store) != before {
			t.Fatal("the backend changed")
		}
	})
	t.Run("message for a removed member", func(t *testing.T) {
		if _, err := dave.g.Process(ctx, hidden); err != nil {
			t.Fatal(err)
		}
		rm, err := dave.g.Process(ctx, removal.Commit)
		if err != nil {
			t.Fatal(err)
		}
		if err := dave.g.MergeStagedCommit(ctx, rm.Commit); err != nil {
			t.Fatal(err)
		}
		if dave.g.Active() {
			t.Fatal("dave still active after his removal")
		}
		before := rawDigest(t, dave.store)
		if _, err := dave.g.Process(ctx, afterRemoval); err == nil {
			t.Fatal("a removed member decrypted a message of the next epoch")
		} else if !errors.Is(err, group.ErrInactive) && !errors.Is(err, group.ErrWrongEpoch) {
			t.Fatalf("got %v", err)
		}
		if rawDigest(t, dave.store) != before {
			t.Fatal("the backend changed")
		}
	})
}
