package engine_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/storage"
)

// keyMaterial returns the member's stored key-material records of the
// group, by name.
func keyMaterial(t *testing.T, m *member) map[string][]byte {
	t.Helper()
	recs, err := m.store.Load(context.Background(), m.g.GroupID())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, r := range recs.Records {
		if r.Key.Class == storage.KeyMaterial {
			out[r.Key.Name] = r.Value
		}
	}
	return out
}

// erased checks that the records in before but not in after are gone from
// every byte the backend holds, and returns their names. The one secret
// that lives on under another name is the key of an own Update once
// committed: it becomes the leaf's HPKE key.
func erased(t *testing.T, m *member, before, after map[string][]byte) []string {
	t.Helper()
	var gone []string
	for name, v := range before {
		if _, ok := after[name]; ok {
			continue
		}
		gone = append(gone, name)
		if strings.HasPrefix(name, "pending-update/") && slices.ContainsFunc(slices.Collect(maps.Keys(after)), func(n string) bool {
			return strings.HasPrefix(n, "hpke/") && string(after[n]) == string(v)
		}) {
			continue
		}
		if holds(t, m.store, v) {
			t.Fatalf("%s: deleted record %s is still in the backend", m.name, name)
		}
	}
	slices.Sort(gone)
	return gone
}

func countPrefix(km map[string][]byte, pred func(string) bool) int {
	n := 0
	for name := range km {
		if pred(name) {
			n++
		}
	}
	return n
}

// TestForwardSecrecyInBackend looks into the backend after every
// decryption and epoch change (RFC 9420 §9.2: delete a key once used;
// §8.6 and §15.3: keep only the configured past epochs and resumption
// PSKs).
func TestForwardSecrecyInBackend(t *testing.T) {
	for _, c := range []struct{ pastEpochs, psks int }{{0, 0}, {2, 2}, {5, 1}, {1, 4}} {
		t.Run(fmt.Sprintf("MaxPastEpochs=%d,NumberOfResumptionPSKs=%d", c.pastEpochs, c.psks), func(t *testing.T) {
			forwardSecrecy(t, newMember, c.pastEpochs, c.psks)
		})
	}
}

// TestForwardSecrecyInBackendJetStore is the same with jetstore backends:
// RawContents is then every file of the server's store directory read from
// disk, and every value in it that the member's keys open.
func TestForwardSecrecyInBackendJetStore(t *testing.T) {
	for _, c := range []struct{ pastEpochs, psks int }{{0, 0}, {2, 2}} {
		t.Run(fmt.Sprintf("MaxPastEpochs=%d,NumberOfResumptionPSKs=%d", c.pastEpochs, c.psks), func(t *testing.T) {
			forwardSecrecy(t, jetMembers(t), c.pastEpochs, c.psks)
		})
	}
}

func forwardSecrecy(t *testing.T, newMember memberMaker, pastEpochs, psks int) {
	ctx := context.Background()
	alice, bob := newMember(t, "alice", 21), newMember(t, "bob", 22)
	alice.cfg.MaxPastEpochs, alice.cfg.NumberOfResumptionPSKs = pastEpochs, psks
	alice.create(t, []byte("fs"))
	bobKP := bob.keyPackage(t, false)
	kpBefore, err := bob.store.List(ctx, storage.ClientScope(), storage.KeyMaterial, "key-package/")
	if err != nil || len(kpBefore) != 1 {
		t.Fatalf("bob's key package keys: %d, %v", len(kpBefore), err)
	}
	res, err := alice.g.AddMembers(ctx, []*wire.KeyPackage{bobKP})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.g.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	bob.join(t, res.Welcome)

	t.Run("used key package", func(t *testing.T) {
		if holds(t, bob.store, kpBefore[0].Value) {
			t.Fatal("the used key package's private keys are still in bob's backend")
		}
	})

	t.Run("decryption in order and out of order", func(t *testing.T) {
		var msgs []*wire.MLSMessage
		for range 4 {
			m, err := bob.g.Protect(ctx, []byte("m"), nil)
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, m)
		}
		for _, i := range []int{0, 3, 1, 2} { // 3 first leaves keys of 1 and 2 behind
			before := keyMaterial(t, alice)
			if _, err := alice.g.Process(ctx, msgs[i]); err != nil {
				t.Fatal(err)
			}
			gone := erased(t, alice, before, keyMaterial(t, alice))
			if len(gone) == 0 {
				t.Fatalf("message %d: no key material deleted", i)
			}
			// The first message consumes the secret tree's root (§9.2); the
			// others a ratchet secret or a kept key.
			want := "/ratchet/"
			switch i {
			case 0:
				want = "/tree/"
			case 1, 2:
				want = "/key/"
			}
			if !slices.ContainsFunc(gone, func(n string) bool { return strings.Contains(n, want) }) {
				t.Fatalf("message %d: deleted %v, no %s record among them", i, gone, want)
			}
		}
		if n := countPrefix(keyMaterial(t, alice), func(n string) bool { return strings.Contains(n, "/key/") }); n != 0 {
			t.Fatalf("%d skipped-generation keys left after every message arrived", n)
		}
	})

	t.Run("epoch changes", func(t *testing.T) {
		late, err := bob.g.Protect(ctx, []byte("late"), nil) // of the current epoch
		if err != nil {
			t.Fatal(err)
		}
		late2, err := bob.g.Protect(ctx, []byte("too late"), nil)
		if err != nil {
			t.Fatal(err)
		}
		lateEpoch := bob.g.Epoch()
		lateRead, lateRefused := false, false
		for round := range 8 {
			// Alice proposes an Update that is never committed: its key must
			// die with the epoch.
			if _, _, err := alice.g.ProposeUpdate(ctx, nil); err != nil {
				t.Fatal(err)
			}
			pending := keyMaterial(t, alice)
			if countPrefix(pending, func(n string) bool { return strings.HasPrefix(n, "pending-update/") }) != 1 {
				t.Fatal("the pending update's key is not stored")
			}
			auth := slices.Clone(alice.g.EpochAuthenticator().Bytes())
			res, err := bob.g.SelfUpdate(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			land(t, bob, res, alice)
			mustAgree(t, alice, bob)
			after := keyMaterial(t, alice)
			gone := erased(t, alice, pending, after)
			if round > 0 && !slices.ContainsFunc(gone, func(n string) bool { return strings.HasPrefix(n, "hpke/") }) {
				t.Fatalf("round %d: no HPKE key replaced by the path (deleted %v)", round, gone)
			}
			if holds(t, alice.store, auth) {
				t.Fatalf("round %d: the old epoch authenticator is still stored", round)
			}
			if n := countPrefix(after, func(n string) bool { return strings.HasPrefix(n, "pending-update/") }); n != 0 {
				t.Fatalf("round %d: %d pending update keys survive the epoch", round, n)
			}
			e := alice.g.Epoch()
			wantPast := min(int(e), alice.cfg.MaxPastEpochs)
			if n := countPrefix(after, func(n string) bool { return strings.HasSuffix(n, "/sender-data") }); n != wantPast+1 {
				t.Fatalf("epoch %d: %d epochs of message secrets, want %d", e, n, wantPast+1)
			}
			if n := countPrefix(after, func(n string) bool { return strings.HasSuffix(n, "/secrets") && strings.HasPrefix(n, "epoch/") }); n != 1 {
				t.Fatalf("epoch %d: %d epochs' secrets stored, want only the current", e, n)
			}
			wantPSK := min(int(e), alice.cfg.NumberOfResumptionPSKs) + 1
			if n := countPrefix(after, func(n string) bool { return strings.HasPrefix(n, "resumption/") }); n != wantPSK {
				t.Fatalf("epoch %d: %d resumption PSKs, want %d (%v)", e, n, wantPSK, slices.Sorted(maps.Keys(after)))
			}
			// The late message decrypts while its epoch is retained, and is
			// refused after.
			if e == lateEpoch+uint64(alice.cfg.MaxPastEpochs)+1 {
				before := rawDigest(t, alice.store)
				if _, err := alice.g.Process(ctx, late2); !errors.Is(err, group.ErrWrongEpoch) {
					t.Fatalf("late message beyond MaxPastEpochs: %v", err)
				}
				if rawDigest(t, alice.store) != before {
					t.Fatal("refusing a late message changed the backend")
				}
				lateRefused = true
			}
			if e == lateEpoch+uint64(alice.cfg.MaxPastEpochs) {
				before := keyMaterial(t, alice)
				rm, err := alice.g.Process(ctx, late)
				if err != nil || string(rm.ApplicationData) != "late" {
					t.Fatalf("late message within MaxPastEpochs: %v", err)
				}
				erased(t, alice, before, keyMaterial(t, alice))
				lateRead = true
			}
		}
		if !lateRefused || (pastEpochs > 0 && !lateRead) {
			t.Fatalf("late message checks did not run: read %v, refused %v", lateRead, lateRefused)
		}
	})

	t.Run("pending update committed", func(t *testing.T) {
		prop, _, err := alice.g.ProposeUpdate(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		before := keyMaterial(t, alice)
		if _, err := bob.g.Process(ctx, prop); err != nil {
			t.Fatal(err)
		}
		res, err := bob.g.Commit(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		land(t, bob, res, alice)
		mustAgree(t, alice, bob)
		gone := erased(t, alice, before, keyMaterial(t, alice))
		if !slices.ContainsFunc(gone, func(n string) bool { return strings.HasPrefix(n, "pending-update/") }) {
			t.Fatalf("the committed Update's key record was not deleted (%v)", gone)
		}
	})

	t.Run("pending commit cleared", func(t *testing.T) {
		before := keyMaterial(t, alice)
		if _, err := alice.g.SelfUpdate(ctx, nil); err != nil {
			t.Fatal(err)
		}
		mid := keyMaterial(t, alice)
		if err := alice.g.ClearPendingCommit(ctx); err != nil {
			t.Fatal(err)
		}
		after := keyMaterial(t, alice)
		gone := erased(t, alice, mid, after)
		if len(gone) == 0 {
			t.Fatal("clearing the pending commit deleted nothing")
		}
		if !maps.EqualFunc(before, after, func(a, b []byte) bool { return string(a) == string(b) }) {
			t.Fatal("clearing the pending commit did not restore the key material")
		}
	})

	t.Run("group deletion", func(t *testing.T) {
		all := keyMaterial(t, alice)
		if err := alice.g.Delete(ctx); err != nil {
			t.Fatal(err)
		}
		for name, v := range all {
			if holds(t, alice.store, v) {
				t.Fatalf("record %s survives the group's deletion", name)
			}
		}
	})
}
