package group

import (
	"bytes"
	"errors"
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/persist"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/secrettree"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/storage"
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

// store is what a backend holds after applying a change log's changes.
type store map[string][]byte

func (s store) apply(t *testing.T, c Changes) {
	t.Helper()
	if len(c.DeletePrefixes) != 0 {
		t.Fatalf("unexpected prefix deletion %v", c.DeletePrefixes)
	}
	for _, k := range c.Deletes {
		delete(s, k.Name)
	}
	for _, r := range c.Puts {
		if r.Key.Class != storage.KeyMaterial {
			t.Fatalf("record %s is not key material", r.Key.Name)
		}
		if _, ok := s[r.Key.Name]; ok {
			t.Fatalf("key material %s written twice", r.Key.Name)
		}
		s[r.Key.Name] = bytes.Clone(r.Value)
	}
}

// matches fails unless s holds exactly the tree's live records.
func (s store) matches(t *testing.T, mt *msgTree) {
	t.Helper()
	want := store{}
	for _, r := range mt.records() {
		want[r.Key.Name] = r.Value
	}
	for name := range want {
		if _, ok := s[name]; !ok {
			t.Fatalf("live record %s never logged", name)
		}
	}
	for name, v := range s {
		w, ok := want[name]
		if !ok {
			t.Fatalf("record %s died without a logged deletion", name)
		}
		if !bytes.Equal(v, w) {
			t.Fatalf("record %s logged with another value", name)
		}
	}
}

// TestMsgTreeRecords drives the group's secret tree with random takes,
// committed or aborted, and checks after each that the change log, applied
// to a store, leaves exactly the tree's live records; that aborted and
// failed takes log and change nothing; that the keys and errors are
// secrettree's, mapped to the group's sentinels; and that the tree
// restored from its records (among other records of the group) equals it.
func TestMsgTreeRecords(t *testing.T) {
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
			s := store{}
			s.apply(t, log.take(nil))
			s.matches(t, mt)
			next := map[[2]int]int{}
			for step := range 400 {
				l := treemath.LeafIndex(rng.IntN(int(leaves)))
				rt := ratchetHandshake
				if rng.IntN(2) == 0 {
					rt = ratchetApplication
				}
				k := [2]int{int(l), rt}
				gen := max(next[k]+rng.IntN(8)-4, 0)
				if rng.IntN(20) == 0 {
					gen += 40
				}
				before := mt.records()
				var tk *msgTake
				if rng.IntN(4) == 0 {
					gen = next[k]
					tk, err = mt.next(l, rt)
				} else {
					tk, err = mt.key(l, rt, uint32(gen))
				}
				if err == nil && rng.IntN(5) == 0 {
					tk.abort()
					if !tk.kn.key.IsZero() {
						t.Fatal("abort left the key")
					}
					if !recordsEqual(before, mt.records()) {
						t.Fatal("abort changed the tree")
					}
					tk, err = mt.key(l, rt, uint32(gen))
				}
				kn, rerr := ref.Key(l, secrettree.RatchetType(rt), uint32(gen))
				switch {
				case rerr == nil && err == nil:
					if tk.kn.gen != uint32(gen) || !kn.Key.Equal(tk.kn.key) || !kn.Nonce.Equal(tk.kn.nonce) {
						t.Fatalf("leaf %d ratchet %d gen %d: keys differ", l, rt, gen)
					}
					tk.kn.clear() // as private.go does, before committing
					tk.commit()
					next[k] = max(next[k], gen+1)
				case errors.Is(rerr, secrettree.ErrGenerationConsumed) && errors.Is(err, ErrReplay),
					errors.Is(rerr, secrettree.ErrTooDistantInFuture) && errors.Is(err, ErrTooFarAhead):
					if !recordsEqual(before, mt.records()) {
						t.Fatal("failed take changed the tree")
					}
				default:
					t.Fatalf("leaf %d ratchet %d gen %d: secrettree %v, group %v", l, rt, gen, rerr, err)
				}
				kn.Clear()
				s.apply(t, log.take(nil))
				s.matches(t, mt)
				if step%50 == 0 {
					mt = restoreEqual(t, suite, mt, leaves, tol, fwd, log)
				}
			}
			// Clearing the tree logs the deletion of every record.
			mt.clear()
			s.apply(t, log.take(nil))
			if len(s) != 0 {
				t.Fatalf("%d records left after clear", len(s))
			}
			if _, err := mt.next(0, ratchetApplication); !errors.Is(err, ErrWrongEpoch) {
				t.Fatalf("next after clear: %v", err)
			}
		}
	}
}

// restoreEqual restores mt from its records, mixed with records of the
// epoch that are not the tree's and of other epochs, checks that the
// result has the same records and that restoring logged nothing, and
// returns it.
func restoreEqual(t *testing.T, suite *ciphersuite.Suite, mt *msgTree, leaves treemath.LeafCount, tol, fwd uint32, log *changeLog) *msgTree {
	t.Helper()
	recs := mt.records()
	for _, name := range []string{"epoch/9/secrets", "epoch/9/sender-data", "epoch/90/tree/0", "epoch/1/key/0/a/1", "join-config"} {
		recs = append(recs, storage.Record{Key: storage.Key{Class: storage.KeyMaterial, Name: name}, Value: []byte{1}})
	}
	rand.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
	mt2, err := restoreMsgTree(suite, 9, leaves, tol, fwd, recs, log)
	if err != nil {
		t.Fatal(err)
	}
	if !recordsEqual(mt.records(), mt2.records()) {
		t.Fatal("restore differs")
	}
	if c := log.take(nil); !c.Empty() {
		t.Fatalf("restore logged %v", c)
	}
	return mt2
}

// TestMsgTreeRestoreRejects checks that records that do not describe a
// tree fail with ErrCorruptState.
func TestMsgTreeRestoreRejects(t *testing.T) {
	suite, _ := ciphersuite.Lookup(1)
	nh := suite.HashLen()
	mt, err := newMsgTree(suite, 3, secret.Zero(nh), 5, 2, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := mt.key(4, ratchetApplication, 3)
	if err != nil {
		t.Fatal(err)
	}
	tk.commit()
	tk.kn.clear()
	good := map[string][]byte{}
	for _, r := range mt.records() {
		good[r.Key.Name] = r.Value
	}
	// Leaf 4 of 5 used: node 3 (leaves 0-3) is kept, nodes 10 and 13 are
	// not (they cover no member); the handshake ratchet is at 0, the
	// application one at 4 with the keys of 1 and 2 kept.
	for _, name := range []string{"epoch/3/tree/3", "epoch/3/ratchet/4/h/0", "epoch/3/ratchet/4/a/4", "epoch/3/key/4/a/1", "epoch/3/key/4/a/2"} {
		if good[name] == nil {
			t.Fatalf("no record %s among %v", name, slicesOfKeys(good))
		}
	}
	if len(good) != 5 {
		t.Fatalf("records %v", slicesOfKeys(good))
	}
	secretValue := persist.ValueEnvelope(persist.ValueVersion, make([]byte, nh))
	cases := map[string]func(m map[string][]byte){
		"unknown name":          func(m map[string][]byte) { m["epoch/3/other"] = secretValue },
		"bad node index":        func(m map[string][]byte) { m["epoch/3/tree/x"] = secretValue },
		"node out of tree":      func(m map[string][]byte) { m["epoch/3/tree/15"] = secretValue },
		"node under node":       func(m map[string][]byte) { m["epoch/3/tree/1"] = secretValue },
		"node over used leaf":   func(m map[string][]byte) { m["epoch/3/tree/9"] = secretValue },
		"node covers no member": func(m map[string][]byte) { m["epoch/3/tree/12"] = secretValue },
		"lost node":             func(m map[string][]byte) { delete(m, "epoch/3/tree/3") },
		"short node": func(m map[string][]byte) {
			m["epoch/3/tree/3"] = persist.ValueEnvelope(persist.ValueVersion, make([]byte, nh-1))
		},
		"one ratchet":         func(m map[string][]byte) { delete(m, "epoch/3/ratchet/4/h/0") },
		"two ratchets":        func(m map[string][]byte) { m["epoch/3/ratchet/4/h/1"] = secretValue },
		"ratchet letter":      func(m map[string][]byte) { m["epoch/3/ratchet/4/x/1"] = secretValue },
		"ratchet leaf":        func(m map[string][]byte) { m["epoch/3/ratchet/5/h/1"] = secretValue },
		"ratchet beyond 2^32": func(m map[string][]byte) { m["epoch/3/ratchet/4/h/4294967297"] = secretValue },
		"kept key ahead":      func(m map[string][]byte) { m["epoch/3/key/4/a/4"] = good["epoch/3/key/4/a/1"] },
		"kept key no ratchet": func(m map[string][]byte) { m["epoch/3/key/0/a/0"] = good["epoch/3/key/4/a/1"] },
		"kept key envelope":   func(m map[string][]byte) { m["epoch/3/key/4/a/1"] = secretValue },
		"exhausted with secret": func(m map[string][]byte) {
			delete(m, "epoch/3/ratchet/4/h/0")
			m["epoch/3/ratchet/4/h/4294967296"] = secretValue
		},
	}
	for name, corrupt := range cases {
		m := maps.Clone(good)
		corrupt(m)
		var recs []storage.Record
		for n, v := range m {
			recs = append(recs, storage.Record{Key: storage.Key{Class: storage.KeyMaterial, Name: n}, Value: bytes.Clone(v)})
		}
		_, err := restoreMsgTree(suite, 3, 5, 2, 10, recs, nil)
		if !errors.Is(err, ErrCorruptState) {
			t.Errorf("%s: %v, want ErrCorruptState", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
	// An exhausted ratchet's record holds an empty secret.
	m := maps.Clone(good)
	delete(m, "epoch/3/ratchet/4/h/0")
	m["epoch/3/ratchet/4/h/4294967296"] = persist.ValueEnvelope(persist.ValueVersion, nil)
	var recs []storage.Record
	for n, v := range m {
		recs = append(recs, storage.Record{Key: storage.Key{Class: storage.KeyMaterial, Name: n}, Value: v})
	}
	mt2, err := restoreMsgTree(suite, 3, 5, 2, 10, recs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mt2.next(4, ratchetHandshake); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("next of an exhausted ratchet: %v", err)
	}
}

func slicesOfKeys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
