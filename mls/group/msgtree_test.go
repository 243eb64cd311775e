package group

import (
	"bytes"
	"errors"
	"github.com/mlsengine/mlsengine/storage"
	"math/rand/v2"
	"testing"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/secrettree"
	"github.com/mlsengine/mlsengine/mls/treemath"
)

func recordsEqual(a, b []storage.Record) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

// TestMsgTreeMatchesSecretTree drives the group's secret tree and package
// secrettree with the same random requests and compares keys and errors,
// aborts some takes and checks they change nothing, and round-trips the
// tree through its records.
func TestMsgTreeMatchesSecretTree(t *testing.T) {
	for _, id := range []ciphersuite.ID{1, 5} {
		suite, _ := ciphersuite.Lookup(id)
		rng := rand.New(rand.NewPCG(uint64(id), 7))
		for _, leaves := range []treemath.LeafCount{1, 3, 8, 13} {
			enc := make([]byte, suite.HashLen())
			for i := range enc {
				enc[i] = byte(rng.IntN(256))
			}
			const tol, fwd = 4, 30
			ref, err := secrettree.New(suite, secret.Copy(enc), leaves, secrettree.WithOutOfOrderTolerance(tol), secrettree.WithMaxForwardDistance(fwd))
			if err != nil {
				t.Fatal(err)
			}
			log := newChangeLog()
			mt, err := newMsgTree(suite, 9, secret.Copy(enc), leaves, tol, fwd, log)
			if err != nil {
				t.Fatal(err)
			}
			next := map[[2]int]int{}
			for step := 0; step < 400; step++ {
				l := treemath.LeafIndex(rng.IntN(int(leaves)))
				rt := rng.IntN(2)
				k := [2]int{int(l), rt}
				gen := next[k] + rng.IntN(8) - 4
				if rng.IntN(20) == 0 {
					gen += 40
				}
				if gen < 0 {
					gen = 0
				}
				before := mt.records()
				tk, err := mt.key(l, rt, uint32(gen))
				if rng.IntN(5) == 0 && err == nil {
					tk.abort()
					if !recordsEqual(before, mt.records()) {
						t.Fatal("abort changed the tree")
					}
					tk, err = mt.key(l, rt, uint32(gen))
				}
				srt := secrettree.Handshake
				if rt == ratchetApplication {
					srt = secrettree.Application
				}
				kn, rerr := ref.Key(l, srt, uint32(gen))
				switch {
				case rerr == nil && err == nil:
					if !bytes.Equal(kn.Key.Bytes(), tk.kn.key.Bytes()) || !bytes.Equal(kn.Nonce.Bytes(), tk.kn.nonce.Bytes()) {
						t.Fatalf("leaf %d ratchet %d gen %d: keys differ", l, rt, gen)
					}
					tk.commit()
					tk.kn.clear()
					if gen+1 > next[k] {
						next[k] = gen + 1
					}
				case errors.Is(rerr, secrettree.ErrGenerationConsumed) && errors.Is(err, ErrReplay),
					errors.Is(rerr, secrettree.ErrTooDistantInFuture) && errors.Is(err, ErrTooFarAhead):
					if !recordsEqual(before, mt.records()) {
						t.Fatal("failed take changed the tree")
					}
				default:
					t.Fatalf("leaf %d ratchet %d gen %d: secrettree %v, group %v", l, rt, gen, rerr, err)
				}
				if step%50 == 0 {
					// Round trip through the records.
					mt2, err := restoreMsgTree(suite, 9, leaves, tol, fwd, mt.records(), log)
					if err != nil {
						t.Fatal(err)
					}
					if !recordsEqual(mt.records(), mt2.records()) {
						t.Fatal("restore differs")
					}
					mt = mt2
				}
			}
			// The change log must describe exactly the live records.
			c := log.take(nil)
			live := map[string]bool{}
			for _, p := range c.Puts {
				live[p.Key.Name] = true
			}
			for _, r := range mt.records() {
				if !live[r.Key.Name] {
					t.Fatalf("record %s never logged", r.Key.Name)
				}
				delete(live, r.Key.Name)
			}
			if len(live) != 0 {
				t.Fatalf("logged records that died without deletion: %v", live)
			}
		}
	}
}
