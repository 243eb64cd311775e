package secrettree

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treemath"
)

// flat is a State as a map from entry to secret bytes, for comparisons.
type flat map[string][]byte

func nodeKey(x treemath.NodeIndex) string { return fmt.Sprintf("node %d", x) }
func ratchetKey(l treemath.LeafIndex, rt RatchetType, next uint64) string {
	return fmt.Sprintf("ratchet %d %v %d", l, rt, next)
}
func keptKey(l treemath.LeafIndex, rt RatchetType, g uint32) string {
	return fmt.Sprintf("kept %d %v %d", l, rt, g)
}

// flatten returns s as a map; with keep unset the secrets are left out.
func flatten(t *testing.T, s *State, keep bool) flat {
	t.Helper()
	f := flat{}
	add := func(k string, b []byte) {
		if _, dup := f[k]; dup {
			t.Fatalf("%s listed twice", k)
		}
		if keep {
			f[k] = bytes.Clone(b)
		} else if len(b) != 0 {
			t.Fatalf("%s listed with a secret", k)
		} else {
			f[k] = nil
		}
	}
	for _, n := range s.Nodes {
		add(nodeKey(n.Node), n.Secret.Bytes())
	}
	for _, r := range s.Ratchets {
		add(ratchetKey(r.Leaf, r.Type, r.Next), r.Secret.Bytes())
	}
	for _, k := range s.Kept {
		add(keptKey(k.Leaf, k.Type, k.Generation), append(bytes.Clone(k.Key.Bytes()), k.Nonce.Bytes()...))
	}
	return f
}

func export(t *testing.T, tree *Tree) flat {
	t.Helper()
	s := tree.Export()
	defer s.Clear()
	return flatten(t, &s, true)
}

// checkChange fails unless c turns the state before into the state after.
func checkChange(t *testing.T, before, after flat, c *Change) {
	t.Helper()
	want := maps.Clone(before)
	for k := range flatten(t, &c.Removed, false) {
		if _, ok := want[k]; !ok {
			t.Fatalf("removed %s was not live", k)
		}
		delete(want, k)
	}
	for k, v := range flatten(t, &c.Added, true) {
		if _, ok := want[k]; ok {
			t.Fatalf("added %s was live", k)
		}
		want[k] = v
	}
	if !maps.EqualFunc(want, after, bytes.Equal) {
		t.Fatalf("change does not describe the step:\nbefore %v\nafter %v\nchange %v", keysOf(before), keysOf(after), keysOf(want))
	}
}

func keysOf(f flat) []string {
	var out []string
	for k := range f {
		out = append(out, k)
	}
	return out
}

// TestTakeMatchesKey drives one tree with random takes, confirmed or
// aborted, and another with Key and NextKey: the keys and errors are the
// same, an aborted or failed take leaves the tree as it was, and each
// Change describes exactly how the exported state moved.
func TestTakeMatchesKey(t *testing.T) {
	for _, id := range []ciphersuite.ID{1, 3} {
		suite, _ := ciphersuite.Lookup(id)
		rng := rand.New(rand.NewPCG(uint64(id), 11))
		for _, n := range []treemath.LeafCount{1, 2, 5, 8, 13} {
			root := make([]byte, suite.HashLen())
			for i := range root {
				root[i] = byte(rng.IntN(256))
			}
			tol, fwd := rng.Uint32N(5), 5+rng.Uint32N(30)
			opts := []Option{WithOutOfOrderTolerance(tol), WithMaxForwardDistance(fwd)}
			a, _ := New(suite, secret.Copy(root), n, opts...)
			b, _ := New(suite, secret.Copy(root), n, opts...)
			next := map[[2]uint32]uint32{}
			for range 400 {
				leaf := treemath.LeafIndex(rng.Uint32N(uint32(n)))
				rt := RatchetType(1 + rng.IntN(2))
				k := [2]uint32{uint32(leaf), uint32(rt)}
				g := max(int(next[k])+rng.IntN(8)-4, 0)
				if rng.IntN(20) == 0 {
					g += int(fwd)
				}
				sending := rng.IntN(4) == 0
				before := export(t, a)
				var tk *Take
				var err error
				if sending {
					tk, err = a.TakeNext(leaf, rt)
				} else {
					tk, err = a.TakeKey(leaf, rt, uint32(g))
				}
				if err == nil && rng.IntN(4) == 0 {
					kn := tk.KeyNonce()
					tk.Abort()
					if !kn.Key.IsZero() || !kn.Nonce.IsZero() {
						t.Fatal("Abort left the key")
					}
					if !maps.EqualFunc(before, export(t, a), bytes.Equal) {
						t.Fatal("Abort changed the tree")
					}
					if sending {
						tk, err = a.TakeNext(leaf, rt)
					} else {
						tk, err = a.TakeKey(leaf, rt, uint32(g))
					}
				}
				var want KeyNonce
				var werr error
				if sending {
					want, werr = b.NextKey(leaf, rt)
				} else {
					want, werr = b.Key(leaf, rt, uint32(g))
				}
				if err != nil || werr != nil {
					if err == nil || werr == nil || err.Error() != werr.Error() {
						t.Fatalf("leaf %d %v generation %d: take %v, Key %v", leaf, rt, g, err, werr)
					}
					if !maps.EqualFunc(before, export(t, a), bytes.Equal) {
						t.Fatal("a failed take changed the tree")
					}
					continue
				}
				kn := tk.KeyNonce()
				if kn.Generation != want.Generation || !kn.Key.Equal(want.Key) || !kn.Nonce.Equal(want.Nonce) {
					t.Fatalf("leaf %d %v generation %d: keys differ", leaf, rt, g)
				}
				kn.Clear() // before Confirm, which must not need it
				c, err := tk.Confirm()
				if err != nil {
					t.Fatal(err)
				}
				after := export(t, a)
				checkChange(t, before, after, &c)
				c.Added.Clear()
				if !maps.EqualFunc(after, export(t, b), bytes.Equal) {
					t.Fatal("trees differ")
				}
				next[k] = max(next[k], want.Generation+1)
				want.Clear()
			}
		}
	}
}

func TestStaleTake(t *testing.T) {
	suite := suite1(t)
	tree, _ := New(suite, secret.Zero(suite.HashLen()), 4)
	first, err := tree.TakeKey(1, Application, 0)
	if err != nil {
		t.Fatal(err)
	}
	second, err := tree.TakeNext(1, Application)
	if err != nil {
		t.Fatal(err)
	}
	// Both prepared generation 0; once one is handed out the other must
	// not be.
	if _, err := first.Confirm(); err != nil {
		t.Fatal(err)
	}
	kn := second.KeyNonce()
	if _, err := second.Confirm(); !errors.Is(err, ErrStaleTake) {
		t.Fatalf("stale take: %v", err)
	}
	if !kn.Key.IsZero() {
		t.Error("a stale take kept its key")
	}
	if _, err := first.Confirm(); !errors.Is(err, ErrStaleTake) {
		t.Fatalf("second Confirm: %v", err)
	}
	// Abort after Confirm leaves the key to the caller.
	kn = first.KeyNonce()
	first.Abort()
	if kn.Key.IsZero() {
		t.Error("Abort after Confirm cleared the key")
	}
	// Key and NextKey change the tree too.
	third, _ := tree.TakeKey(2, Handshake, 0)
	if _, err := tree.Key(3, Handshake, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := third.Confirm(); !errors.Is(err, ErrStaleTake) {
		t.Fatalf("take before Key: %v", err)
	}
	fourth, _ := tree.TakeKey(2, Handshake, 0)
	tree.Clear()
	if _, err := fourth.Confirm(); !errors.Is(err, ErrCleared) {
		t.Fatalf("take before Clear: %v", err)
	}
	if _, err := tree.TakeKey(2, Handshake, 0); !errors.Is(err, ErrCleared) {
		t.Fatal(err)
	}
}

// TestTakeKeptKey aborts the take of a kept key, whose key the caller had
// cleared: the tree's copy is intact and hands out the same key.
func TestTakeKeptKey(t *testing.T) {
	suite := suite1(t)
	tree, _ := New(suite, secret.Zero(suite.HashLen()), 2)
	if _, err := tree.Key(0, Application, 3); err != nil {
		t.Fatal(err)
	}
	tk, err := tree.TakeKey(0, Application, 1)
	if err != nil {
		t.Fatal(err)
	}
	kn := tk.KeyNonce()
	want := bytes.Clone(kn.Key.Bytes())
	kn.Clear()
	tk.Abort()
	got, err := tree.Key(0, Application, 1)
	if err != nil || !bytes.Equal(got.Key.Bytes(), want) {
		t.Fatalf("kept key after abort: %v", err)
	}
}

// TestFailedKeyChangesNothing: a refused generation does not initialize
// the leaf either.
func TestFailedKeyChangesNothing(t *testing.T) {
	suite := suite1(t)
	tree, _ := New(suite, secret.Zero(suite.HashLen()), 8, WithMaxForwardDistance(3))
	before := export(t, tree)
	if _, err := tree.Key(5, Application, 4); !errors.Is(err, ErrTooDistantInFuture) {
		t.Fatal(err)
	}
	if !maps.EqualFunc(before, export(t, tree), bytes.Equal) {
		t.Fatal("a refused generation changed the tree")
	}
}
