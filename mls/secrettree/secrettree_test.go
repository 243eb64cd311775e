package secrettree

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/mlsengine/mlsengine/internal/vectors"
	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treemath"
)

type hexBytes = vectors.Hex

// secretTreeVector is the part of a secret-tree.json case that TestVectors
// reads; the conformance package's TestOfficialVectors checks every field
// of the file.
type secretTreeVector struct {
	CipherSuite      uint16   `json:"cipher_suite"`
	EncryptionSecret hexBytes `json:"encryption_secret"`
	Leaves           [][]struct {
		Generation     uint32   `json:"generation"`
		ApplicationKey hexBytes `json:"application_key"`
	} `json:"leaves"`
}

func loadVectors(t testing.TB) []secretTreeVector {
	t.Helper()
	vs, err := vectors.Load[secretTreeVector]("../../testdata/vectors/secret-tree.json")
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func suite1(t testing.TB) *ciphersuite.Suite {
	t.Helper()
	s, err := ciphersuite.Lookup(1)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestVectors derives, with the default window, every generation that
// secret-tree.json lists, and checks what the conformance verifier (the
// conformance package's TestOfficialVectors, which checks the keys and
// nonces) does not: the generation each key carries, that no node secret is
// left once every leaf has been used (§9.2), and that a sender on a fresh
// tree reaches the same key through NextKey.
func TestVectors(t *testing.T) {
	supported := 0
	for i, v := range loadVectors(t) {
		t.Run(fmt.Sprintf("%d-suite%d-%dleaves", i, v.CipherSuite, len(v.Leaves)), func(t *testing.T) {
			suite, err := ciphersuite.Lookup(ciphersuite.ID(v.CipherSuite))
			if errors.Is(err, ciphersuite.ErrUnsupportedCipherSuite) {
				t.Skipf("suite %d unsupported", v.CipherSuite)
			}
			if err != nil {
				t.Fatal(err)
			}
			supported++
			// The largest generation in the vectors is 15, within the
			// default forward distance.
			tree, err := New(suite, secret.Copy(v.EncryptionSecret), treemath.LeafCount(len(v.Leaves)))
			if err != nil {
				t.Fatal(err)
			}
			for leaf, gens := range v.Leaves {
				for _, g := range gens {
					for _, rt := range []RatchetType{Handshake, Application} {
						kn, err := tree.Key(treemath.LeafIndex(leaf), rt, g.Generation)
						if err != nil {
							t.Fatal(err)
						}
						if kn.Generation != g.Generation {
							t.Errorf("leaf %d %v: generation %d, want %d", leaf, rt, kn.Generation, g.Generation)
						}
					}
				}
			}
			// Every leaf has been used, so every tree node secret is gone.
			if len(tree.nodes) != 0 {
				t.Errorf("%d node secrets left after all leaves were derived", len(tree.nodes))
			}
			// A sender on a fresh tree produces the same keys in order.
			sender, _ := New(suite, secret.Copy(v.EncryptionSecret), treemath.LeafCount(len(v.Leaves)))
			last := len(v.Leaves) - 1
			want := v.Leaves[last][len(v.Leaves[last])-1]
			var kn KeyNonce
			for g := uint32(0); g <= want.Generation; g++ {
				if kn, err = sender.NextKey(treemath.LeafIndex(last), Application); err != nil || kn.Generation != g {
					t.Fatalf("NextKey: generation %d, %v", kn.Generation, err)
				}
			}
			if !kn.Key.EqualBytes(want.ApplicationKey) {
				t.Error("sender key mismatch")
			}
		})
	}
	if supported == 0 {
		t.Fatal("no supported suite")
	}
}

// reference derives generation g of leaf's ratchet directly from the RFC's
// definitions, without the Tree.
func reference(t *testing.T, suite *ciphersuite.Suite, root []byte, n treemath.LeafCount, leaf treemath.LeafIndex, rt RatchetType, g uint32) (key, nonce []byte) {
	t.Helper()
	full, _ := treemath.FullLeafCount(uint32(n))
	x, _ := treemath.LeafToNode(leaf, full)
	path, _ := treemath.DirectPath(x, full)
	s := root
	for i := len(path) - 1; i >= 0; i-- {
		child := x
		if i > 0 {
			child = path[i-1]
		}
		side := "right"
		if child < path[i] {
			side = "left"
		}
		s, _ = suite.ExpandWithLabel(s, "tree", []byte(side), suite.HashLen())
	}
	label := "handshake"
	if rt == Application {
		label = "application"
	}
	s, _ = suite.ExpandWithLabel(s, label, nil, suite.HashLen())
	for j := uint32(0); j < g; j++ {
		s, _ = suite.DeriveTreeSecret(s, "secret", j, suite.HashLen())
	}
	key, _ = suite.DeriveTreeSecret(s, "key", g, suite.KeyLen())
	nonce, _ = suite.DeriveTreeSecret(s, "nonce", g, suite.NonceLen())
	return key, nonce
}

func TestAgainstReference(t *testing.T) {
	suite := suite1(t)
	root := bytes.Repeat([]byte{3}, suite.HashLen())
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []treemath.LeafCount{1, 2, 3, 5, 8, 13, 100} {
		tree, err := New(suite, secret.Copy(root), n, WithMaxForwardDistance(50))
		if err != nil {
			t.Fatal(err)
		}
		next := map[[2]uint32]uint32{}
		for range 200 {
			leaf := treemath.LeafIndex(rng.Uint32N(uint32(n)))
			rt := RatchetType(1 + rng.IntN(2))
			k := [2]uint32{uint32(leaf), uint32(rt)}
			g := next[k] + rng.Uint32N(3)
			kn, err := tree.Key(leaf, rt, g)
			if err != nil {
				t.Fatal(err)
			}
			next[k] = g + 1
			wk, wn := reference(t, suite, root, n, leaf, rt, g)
			if !kn.Key.EqualBytes(wk) || !kn.Nonce.EqualBytes(wn) {
				t.Fatalf("n=%d leaf %d %v generation %d: mismatch", n, leaf, rt, g)
			}
		}
	}
	// A group of 5 members has an 8-leaf ratchet tree; both counts give the
	// same secrets.
	a, _ := New(suite, secret.Copy(root), 5)
	b, _ := New(suite, secret.Copy(root), 8)
	ka, _ := a.Key(4, Application, 0)
	kb, _ := b.Key(4, Application, 0)
	if !ka.Key.Equal(kb.Key) {
		t.Error("leaf count 5 and 8 differ")
	}
}

func TestReplayAndOutOfOrder(t *testing.T) {
	suite := suite1(t)
	root := secret.Zero(suite.HashLen())
	tree, err := New(suite, root, 4, WithOutOfOrderTolerance(3), WithMaxForwardDistance(10))
	if err != nil {
		t.Fatal(err)
	}
	get := func(g uint32) error {
		kn, err := tree.Key(2, Application, g)
		if err == nil {
			if kn.Generation != g {
				t.Fatalf("generation %d returned for %d", kn.Generation, g)
			}
			kn.Clear()
		}
		return err
	}
	if err := get(0); err != nil {
		t.Fatal(err)
	}
	if err := get(0); !errors.Is(err, ErrGenerationConsumed) {
		t.Fatalf("replay of 0: %v", err)
	}
	// Jump to 6: 1 and 2 are beyond the tolerance, 3, 4 and 5 are kept.
	if err := get(6); err != nil {
		t.Fatal(err)
	}
	for _, g := range []uint32{1, 2} {
		if err := get(g); !errors.Is(err, ErrGenerationConsumed) {
			t.Fatalf("generation %d beyond tolerance: %v", g, err)
		}
	}
	for _, g := range []uint32{4, 3, 5} {
		if err := get(g); err != nil {
			t.Fatalf("out-of-order generation %d: %v", g, err)
		}
		if err := get(g); !errors.Is(err, ErrGenerationConsumed) {
			t.Fatalf("replay of %d: %v", g, err)
		}
	}
	if err := get(6); !errors.Is(err, ErrGenerationConsumed) {
		t.Fatalf("replay of 6: %v", err)
	}
	// 7 and 8 skipped, then 9: moving on to 12 evicts 7 and 8 (12-8 > 3)
	// but generation 10 and 11 remain.
	if err := get(9); err != nil {
		t.Fatal(err)
	}
	if err := get(12); err != nil {
		t.Fatal(err)
	}
	for _, g := range []uint32{7, 8} {
		if err := get(g); !errors.Is(err, ErrGenerationConsumed) {
			t.Fatalf("evicted generation %d: %v", g, err)
		}
	}
	if err := get(11); err != nil {
		t.Fatal(err)
	}
	if n := len(tree.leaves[2][Application-1].kept); n != 1 {
		t.Errorf("%d kept keys, want 1 (generation 10)", n)
	}
	// Forward distance: next is 13, so 24 is refused and 23 allowed.
	if err := get(24); !errors.Is(err, ErrTooDistantInFuture) {
		t.Fatalf("generation 24: %v", err)
	}
	if err := get(23); err != nil {
		t.Fatalf("generation 23: %v", err)
	}
	// The handshake ratchet of the same leaf is independent.
	if kn, err := tree.Key(2, Handshake, 0); err != nil {
		t.Fatal(err)
	} else {
		kn.Clear()
	}
	// Senders cannot reuse what receivers consumed, and vice versa.
	kn, err := tree.NextKey(2, Handshake)
	if err != nil || kn.Generation != 1 {
		t.Fatalf("NextKey: %d, %v", kn.Generation, err)
	}
	if _, err := tree.Key(2, Handshake, 1); !errors.Is(err, ErrGenerationConsumed) {
		t.Fatalf("receiving a sent generation: %v", err)
	}
}

func TestZeroTolerance(t *testing.T) {
	suite := suite1(t)
	tree, _ := New(suite, secret.Zero(suite.HashLen()), 2, WithOutOfOrderTolerance(0), WithMaxForwardDistance(0))
	if _, err := tree.Key(1, Application, 1); !errors.Is(err, ErrTooDistantInFuture) {
		t.Fatalf("skip with zero forward distance: %v", err)
	}
	if _, err := tree.Key(1, Application, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := tree.Key(1, Application, 1); err != nil {
		t.Fatal(err)
	}
	tree2, _ := New(suite, secret.Zero(suite.HashLen()), 2, WithOutOfOrderTolerance(0))
	if _, err := tree2.Key(1, Application, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := tree2.Key(1, Application, 4); !errors.Is(err, ErrGenerationConsumed) {
		t.Fatalf("out of order with zero tolerance: %v", err)
	}
	if n := len(tree2.leaves[1][Application-1].kept); n != 0 {
		t.Errorf("%d keys kept with zero tolerance", n)
	}
}

// TestDeletion checks the §9.2 deletion schedule on the tree's state.
func TestDeletion(t *testing.T) {
	suite := suite1(t)
	root := secret.Copy(bytes.Repeat([]byte{9}, suite.HashLen()))
	rootBytes := root.Bytes()
	tree, _ := New(suite, root, 4)
	// Leaf 3 (node 6): the root 3 and node 5 are consumed and deleted at
	// once (§9.2's example deletes D, F, G and keeps E and C): what stays
	// are their other children, nodes 1 and 4.
	if _, err := tree.Key(3, Application, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rootBytes, make([]byte, len(rootBytes))) {
		t.Fatal("encryption secret not cleared once consumed")
	}
	if got := keys(tree.nodes); !slices.Equal(got, []treemath.NodeIndex{1, 4}) {
		t.Fatalf("after leaf 3: nodes %v, want [1 4]", got)
	}
	// Leaf 0 (node 0): node 1 is consumed, node 2 (leaf 1) kept.
	if _, err := tree.Key(0, Handshake, 0); err != nil {
		t.Fatal(err)
	}
	if got := keys(tree.nodes); !slices.Equal(got, []treemath.NodeIndex{2, 4}) {
		t.Fatalf("after leaf 0: nodes %v, want [2 4]", got)
	}
	// The ratchet secret of a used generation is gone and the key cannot
	// be obtained again.
	r := tree.leaves[3][Application-1]
	if r.next != 1 || len(r.kept) != 0 {
		t.Fatalf("ratchet state next=%d kept=%d", r.next, len(r.kept))
	}
	if _, err := tree.Key(3, Application, 0); !errors.Is(err, ErrGenerationConsumed) {
		t.Fatal(err)
	}
	// Clear deletes everything.
	held := r.secret.Bytes()
	tree.Clear()
	if !bytes.Equal(held, make([]byte, len(held))) {
		t.Fatal("ratchet secret not cleared")
	}
	if _, err := tree.Key(1, Application, 0); !errors.Is(err, ErrCleared) {
		t.Fatal(err)
	}
	if _, err := tree.NextKey(1, Application); !errors.Is(err, ErrCleared) {
		t.Fatal(err)
	}
}

func keys(m map[treemath.NodeIndex]secret.Secret) []treemath.NodeIndex {
	var ks []treemath.NodeIndex
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestLazyLargeTree(t *testing.T) {
	suite := suite1(t)
	tree, err := New(suite, secret.Zero(suite.HashLen()), 50000)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.Key(49999, Application, 0); err != nil {
		t.Fatal(err)
	}
	// Only siblings of the leaf's 16 ancestors in the 65536-leaf tree are
	// kept, and only those that cover a leaf below 50000; no ancestor.
	x, _ := treemath.LeafToNode(49999, 65536)
	path, _ := treemath.AppendDirectPath(nil, x, 65536)
	for _, a := range path {
		if _, ok := tree.nodes[a]; ok {
			t.Fatalf("consumed ancestor %d kept", a)
		}
	}
	if len(tree.nodes) > 16 || len(tree.leaves) != 1 {
		t.Fatalf("%d nodes, %d leaves derived", len(tree.nodes), len(tree.leaves))
	}
	for y := range tree.nodes {
		if !coversMember(y, 50000) {
			t.Fatalf("node %d covers no member and was kept", y)
		}
	}
	if _, err := tree.Key(50000, Application, 0); !errors.Is(err, ErrLeafOutOfRange) {
		t.Fatal(err)
	}
}

func TestExhaustion(t *testing.T) {
	suite := suite1(t)
	tree, _ := New(suite, secret.Zero(suite.HashLen()), 1)
	if _, err := tree.NextKey(0, Application); err != nil {
		t.Fatal(err)
	}
	// Pretend the ratchet has reached the last generation.
	tree.leaves[0][Application-1].next = math.MaxUint32
	kn, err := tree.NextKey(0, Application)
	if err != nil || kn.Generation != math.MaxUint32 {
		t.Fatalf("last generation: %d, %v", kn.Generation, err)
	}
	if r := tree.leaves[0][Application-1]; r.next != 1<<32 || !r.secret.IsZero() {
		t.Error("secret kept after the last generation")
	}
	if _, err := tree.NextKey(0, Application); !errors.Is(err, ErrRatchetExhausted) {
		t.Fatal(err)
	}
	if _, err := tree.Key(0, Application, math.MaxUint32); !errors.Is(err, ErrGenerationConsumed) {
		t.Fatal(err)
	}
}

func TestErrors(t *testing.T) {
	suite := suite1(t)
	nh := suite.HashLen()
	if _, err := New(nil, secret.Zero(nh), 1); !errors.Is(err, ErrNilSuite) {
		t.Error(err)
	}
	if _, err := New(suite, secret.Zero(nh-1), 1); !errors.Is(err, ErrSecretLength) {
		t.Error(err)
	}
	for _, n := range []treemath.LeafCount{0, 1<<31 + 1, math.MaxUint32} {
		if _, err := New(suite, secret.Zero(nh), n); !errors.Is(err, ErrInvalidLeafCount) {
			t.Errorf("New(%d leaves): %v", n, err)
		}
	}
	tree, err := New(suite, secret.Zero(nh), 1<<31)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.Key(1<<31-1, Application, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := tree.Key(1<<31, Application, 0); !errors.Is(err, ErrLeafOutOfRange) {
		t.Error(err)
	}
	if _, err := tree.Key(math.MaxUint32, Application, 0); !errors.Is(err, ErrLeafOutOfRange) {
		t.Error(err)
	}
	for _, rt := range []RatchetType{0, 3, 255} {
		if _, err := tree.Key(0, rt, 0); !errors.Is(err, ErrInvalidRatchetType) {
			t.Error(err)
		}
		if _, err := tree.NextKey(0, rt); !errors.Is(err, ErrInvalidRatchetType) {
			t.Error(err)
		}
	}
	if _, err := tree.Key(0, Application, math.MaxUint32); !errors.Is(err, ErrTooDistantInFuture) {
		t.Error(err)
	}
	if Handshake.String() != "handshake" || RatchetType(9).String() != "RatchetType(9)" {
		t.Error("RatchetType.String")
	}
}

// TestNeverPanics throws random requests at small trees.
func TestNeverPanics(t *testing.T) {
	suite := suite1(t)
	rng := rand.New(rand.NewPCG(7, 8))
	for range 20 {
		n := treemath.LeafCount(1 + rng.IntN(20))
		tree, _ := New(suite, secret.Zero(suite.HashLen()), n,
			WithOutOfOrderTolerance(rng.Uint32N(4)), WithMaxForwardDistance(rng.Uint32N(8)))
		for range 300 {
			leaf := treemath.LeafIndex(rng.Uint32N(uint32(n) + 2))
			rt := RatchetType(rng.IntN(4))
			var err error
			var kn KeyNonce
			if rng.IntN(4) == 0 {
				kn, err = tree.NextKey(leaf, rt)
			} else {
				kn, err = tree.Key(leaf, rt, rng.Uint32N(30))
			}
			if err == nil && (kn.Key.Len() != suite.KeyLen() || kn.Nonce.Len() != suite.NonceLen()) {
				t.Fatal("bad key length")
			}
			if err != nil && !errors.Is(err, ErrGenerationConsumed) && !errors.Is(err, ErrTooDistantInFuture) &&
				!errors.Is(err, ErrLeafOutOfRange) && !errors.Is(err, ErrInvalidRatchetType) {
				t.Fatalf("unexpected error: %v", err)
			}
		}
	}
}

func TestConcurrent(t *testing.T) {
	suite := suite1(t)
	tree, _ := New(suite, secret.Zero(suite.HashLen()), 64)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				leaf := treemath.LeafIndex((w*50 + i) % 64)
				if kn, err := tree.NextKey(leaf, Application); err == nil {
					kn.Clear()
				}
				if kn, err := tree.Key(leaf, Handshake, uint32(i/10)); err == nil {
					kn.Clear()
				}
			}
		}()
	}
	wg.Wait()
}

func TestNoLeaks(t *testing.T) {
	suite := suite1(t)
	tree, _ := New(suite, secret.Copy(bytes.Repeat([]byte{0xcd}, suite.HashLen())), 2)
	kn, _ := tree.NextKey(0, Application)
	for _, v := range []any{kn, &kn, tree} {
		for _, f := range []string{"%v", "%+v", "%#v", "%x"} {
			if s := fmt.Sprintf(f, v); bytes.Contains([]byte(s), []byte("cdcd")) {
				t.Errorf("%s leaks", f)
			}
		}
	}
}

func BenchmarkFirstKey50000(b *testing.B) {
	suite := suite1(b)
	root := bytes.Repeat([]byte{1}, suite.HashLen())
	b.ReportAllocs()
	for b.Loop() {
		tree, err := New(suite, secret.Copy(root), 50000)
		if err != nil {
			b.Fatal(err)
		}
		kn, err := tree.Key(49999, Application, 0)
		if err != nil {
			b.Fatal(err)
		}
		kn.Clear()
		tree.Clear()
	}
}

func BenchmarkRatchetStep(b *testing.B) {
	suite := suite1(b)
	tree, _ := New(suite, secret.Zero(suite.HashLen()), 50000)
	b.ReportAllocs()
	for b.Loop() {
		kn, err := tree.NextKey(12345, Application)
		if err != nil {
			b.Fatal(err)
		}
		kn.Clear()
	}
}

func BenchmarkReceiveInOrder(b *testing.B) {
	suite := suite1(b)
	tree, _ := New(suite, secret.Zero(suite.HashLen()), 50000)
	b.ReportAllocs()
	g := uint32(0)
	for b.Loop() {
		kn, err := tree.Key(777, Application, g)
		if err != nil {
			b.Fatal(err)
		}
		kn.Clear()
		g++
	}
}
