package secrettree

import (
	"bytes"
	"encoding/binary"
	"errors"
	"maps"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treemath"
)

// TestExportRestore round-trips trees through their exported state at
// random points and drives the original and the restored tree on: their
// keys, errors and states stay the same.
func TestExportRestore(t *testing.T) {
	suite := suite1(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []treemath.LeafCount{1, 2, 3, 7, 8, 100} {
		opts := []Option{WithOutOfOrderTolerance(3), WithMaxForwardDistance(20)}
		a, _ := New(suite, secret.Copy(bytes.Repeat([]byte{byte(n)}, suite.HashLen())), n, opts...)
		var b *Tree
		for step := range 300 {
			if step%40 == 0 {
				s := a.Export()
				var err error
				if b, err = Restore(suite, n, s, opts...); err != nil {
					t.Fatalf("n=%d step %d: %v", n, step, err)
				}
				if !maps.EqualFunc(export(t, a), export(t, b), bytes.Equal) {
					t.Fatal("restored state differs")
				}
			}
			leaf := treemath.LeafIndex(rng.Uint32N(uint32(n)))
			rt := RatchetType(1 + rng.IntN(2))
			g := rng.Uint32N(25)
			ka, ea := a.Key(leaf, rt, g)
			kb, eb := b.Key(leaf, rt, g)
			if (ea == nil) != (eb == nil) || ea != nil && ea.Error() != eb.Error() {
				t.Fatalf("errors %v, %v", ea, eb)
			}
			if ea == nil && (!ka.Key.Equal(kb.Key) || !ka.Nonce.Equal(kb.Nonce)) {
				t.Fatal("keys differ")
			}
		}
	}
	// An exhausted ratchet round-trips with its empty secret.
	a, _ := New(suite, secret.Zero(suite.HashLen()), 1)
	a.leaves = map[treemath.LeafIndex]ratchets{}
	delete(a.nodes, 0)
	a.leaves[0] = ratchets{{secret: secret.Zero(suite.HashLen())}, {next: 1 << 32}}
	b, err := Restore(suite, 1, a.Export())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.NextKey(0, Application); !errors.Is(err, ErrRatchetExhausted) {
		t.Fatal(err)
	}
}

// validState is the state of a 5-leaf tree once leaf 4's application
// ratchet has handed out generation 3 with a tolerance of 2: node 3, the
// ratchets of leaf 4 at 0 and 4, and the kept keys of 1 and 2.
func validState(t *testing.T, suite *ciphersuite.Suite) State {
	t.Helper()
	tree, _ := New(suite, secret.Zero(suite.HashLen()), 5, WithOutOfOrderTolerance(2))
	if _, err := tree.Key(4, Application, 3); err != nil {
		t.Fatal(err)
	}
	s := tree.Export()
	if len(s.Nodes) != 1 || s.Nodes[0].Node != 3 || len(s.Ratchets) != 2 || len(s.Kept) != 2 {
		t.Fatalf("state %v", flatten(t, &s, true))
	}
	return s
}

func TestRestoreRejects(t *testing.T) {
	suite := suite1(t)
	nh := suite.HashLen()
	sec := func(n int) secret.Secret { return secret.Zero(n) }
	cases := map[string]func(s *State){
		"node outside the tree": func(s *State) { s.Nodes = append(s.Nodes, NodeSecret{15, sec(nh)}) },
		"node index max":        func(s *State) { s.Nodes = append(s.Nodes, NodeSecret{math.MaxUint32, sec(nh)}) },
		"node of no member":     func(s *State) { s.Nodes = append(s.Nodes, NodeSecret{12, sec(nh)}) },
		"node twice":            func(s *State) { s.Nodes = append(s.Nodes, NodeSecret{3, sec(nh)}) },
		"node under a node":     func(s *State) { s.Nodes = append(s.Nodes, NodeSecret{1, sec(nh)}) },
		"node over a leaf":      func(s *State) { s.Nodes = append(s.Nodes, NodeSecret{8, sec(nh)}) },
		"root over all":         func(s *State) { s.Nodes = append(s.Nodes, NodeSecret{7, sec(nh)}) },
		"node missing":          func(s *State) { s.Nodes = nil },
		"node secret length":    func(s *State) { s.Nodes[0].Secret = sec(nh + 1) },
		"ratchet type":          func(s *State) { s.Ratchets[0].Type = 0 },
		"ratchet type 3":        func(s *State) { s.Ratchets[0].Type = 3 },
		"ratchet leaf":          func(s *State) { s.Ratchets[0].Leaf, s.Ratchets[1].Leaf = 5, 5 },
		"ratchet twice":         func(s *State) { s.Ratchets[0].Type = Application },
		"one ratchet":           func(s *State) { s.Ratchets = s.Ratchets[1:] },
		"ratchet beyond 2^32":   func(s *State) { s.Ratchets[0].Next = 1<<32 + 1 },
		"ratchet secret length": func(s *State) { s.Ratchets[0].Secret = sec(nh - 1) },
		"exhausted with secret": func(s *State) { s.Ratchets[0].Next = 1 << 32 },
		"empty secret":          func(s *State) { s.Ratchets[0].Secret = secret.Secret{} },
		"kept type":             func(s *State) { s.Kept[0].Type = 7 },
		"kept leaf":             func(s *State) { s.Kept[0].Leaf = 3 },
		"kept leaf outside":     func(s *State) { s.Kept[0].Leaf = math.MaxUint32 },
		"kept other ratchet":    func(s *State) { s.Kept[0].Type = Handshake },
		"kept at next":          func(s *State) { s.Kept[0].Generation = 4 },
		"kept twice":            func(s *State) { s.Kept[0].Generation = s.Kept[1].Generation },
		"kept key length":       func(s *State) { s.Kept[0].Key = sec(suite.KeyLen() + 1) },
		"kept nonce length":     func(s *State) { s.Kept[1].Nonce = sec(0) },
		"leaf lost":             func(s *State) { s.Ratchets, s.Kept = nil, nil },
	}
	for name, corrupt := range cases {
		s := validState(t, suite)
		corrupt(&s)
		held := s.Ratchets
		if _, err := Restore(suite, 5, s); !errors.Is(err, ErrInvalidState) {
			t.Errorf("%s: %v, want ErrInvalidState", name, err)
		}
		for _, r := range held {
			if !r.Secret.IsZero() {
				t.Errorf("%s: secrets not cleared", name)
			}
		}
	}
	s := validState(t, suite)
	if _, err := Restore(suite, 5, s); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(nil, 5, validState(t, suite)); !errors.Is(err, ErrNilSuite) {
		t.Error(err)
	}
	for _, n := range []treemath.LeafCount{0, 1<<31 + 1} {
		if _, err := Restore(suite, n, validState(t, suite)); !errors.Is(err, ErrInvalidLeafCount) {
			t.Error(err)
		}
	}
	// Other leaf counts give the same shape but another set of members.
	for _, n := range []treemath.LeafCount{4, 6, 8} {
		if _, err := Restore(suite, n, validState(t, suite)); !errors.Is(err, ErrInvalidState) {
			t.Errorf("%d leaves: %v", n, err)
		}
	}
}

// encodeState is the input format of FuzzRestore: a leaf count byte (below
// 20), then entries of a tag byte (0 node, 1 ratchet, 2 kept key),
// big-endian fields, and secret lengths, the secrets themselves being
// filler.
func encodeState(n treemath.LeafCount, s *State) []byte {
	b := []byte{byte(n)}
	for _, nd := range s.Nodes {
		b = append(b, 0)
		b = binary.BigEndian.AppendUint32(b, uint32(nd.Node))
		b = append(b, byte(nd.Secret.Len()))
	}
	for _, r := range s.Ratchets {
		b = append(b, 1)
		b = binary.BigEndian.AppendUint32(b, uint32(r.Leaf))
		b = append(b, byte(r.Type))
		b = binary.BigEndian.AppendUint64(b, r.Next)
		b = append(b, byte(r.Secret.Len()))
	}
	for _, k := range s.Kept {
		b = append(b, 2)
		b = binary.BigEndian.AppendUint32(b, uint32(k.Leaf))
		b = append(b, byte(k.Type))
		b = binary.BigEndian.AppendUint32(b, k.Generation)
		b = append(b, byte(k.Key.Len()), byte(k.Nonce.Len()))
	}
	return b
}

func decodeState(b []byte) (treemath.LeafCount, State, bool) {
	var s State
	if len(b) == 0 {
		return 0, s, false
	}
	// Few leaves keep each run, which serves every member, fast.
	n := treemath.LeafCount(b[0] % 20)
	b = b[1:]
	fill := byte(1)
	sec := func(l byte) secret.Secret {
		fill++
		return secret.New(bytes.Repeat([]byte{fill}, int(l)))
	}
	for len(b) > 0 {
		switch b[0] % 3 {
		case 0:
			if len(b) < 6 {
				return n, s, false
			}
			s.Nodes = append(s.Nodes, NodeSecret{treemath.NodeIndex(binary.BigEndian.Uint32(b[1:])), sec(b[5])})
			b = b[6:]
		case 1:
			if len(b) < 16 {
				return n, s, false
			}
			s.Ratchets = append(s.Ratchets, RatchetSecret{treemath.LeafIndex(binary.BigEndian.Uint32(b[1:])), RatchetType(b[5]), binary.BigEndian.Uint64(b[6:]), sec(b[14])})
			b = b[16:]
		case 2:
			if len(b) < 12 {
				return n, s, false
			}
			s.Kept = append(s.Kept, KeptKey{treemath.LeafIndex(binary.BigEndian.Uint32(b[1:])), RatchetType(b[5]),
				KeyNonce{binary.BigEndian.Uint32(b[6:]), sec(b[10]), sec(b[11])}})
			b = b[12:]
		}
	}
	return n, s, true
}

// FuzzRestore restores arbitrary states. Restore must never panic, and a
// state it accepts must export as given and serve every member: each
// member's leaf is used or under exactly one stored node, and key requests
// fail only as Key documents, never on a missing secret.
func FuzzRestore(f *testing.F) {
	suite := suite1(f)
	for _, n := range []treemath.LeafCount{1, 5, 13} {
		tree, _ := New(suite, secret.Zero(suite.HashLen()), n, WithOutOfOrderTolerance(3))
		for i := range 4 {
			s := tree.Export()
			f.Add(encodeState(n, &s))
			s.Clear()
			if _, err := tree.Key(treemath.LeafIndex(uint32(i*3)%uint32(n)), Application, uint32(i*2)); err != nil {
				f.Fatal(err)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// Longer inputs make no new states, only slower minimizing.
		if len(b) > 300 {
			return
		}
		n, s, ok := decodeState(b)
		if !ok {
			return
		}
		tree, err := Restore(suite, n, s, WithOutOfOrderTolerance(3), WithMaxForwardDistance(5))
		if err != nil {
			if !errors.Is(err, ErrInvalidState) && !errors.Is(err, ErrInvalidLeafCount) {
				t.Fatalf("unexpected error: %v", err)
			}
			return
		}
		// The tree holds the input's secrets now.
		if !maps.EqualFunc(flatten(t, &s, true), export(t, tree), bytes.Equal) {
			t.Fatal("restored state differs from the input")
		}
		for l := range uint32(n) {
			x, _ := treemath.LeafToNode(treemath.LeafIndex(l), tree.full)
			chain, _ := treemath.AppendDirectPath([]treemath.NodeIndex{x}, x, tree.full)
			held := 0
			if _, ok := tree.leaves[treemath.LeafIndex(l)]; ok {
				held++
			}
			for _, y := range chain {
				if _, ok := tree.nodes[y]; ok {
					held++
				}
			}
			if held != 1 {
				t.Fatalf("leaf %d held by %d secrets", l, held)
			}
		}
		// Deriving keys costs; one leaf is enough to exercise it.
		l := treemath.LeafIndex(len(b) % int(n))
		for _, rt := range []RatchetType{Handshake, Application} {
			_, err := tree.Key(l, rt, 2)
			if err != nil && !errors.Is(err, ErrGenerationConsumed) && !errors.Is(err, ErrTooDistantInFuture) {
				t.Fatalf("leaf %d %v: %v", l, rt, err)
			}
			_, err = tree.NextKey(l, rt)
			if err != nil && !errors.Is(err, ErrRatchetExhausted) {
				t.Fatalf("leaf %d %v: %v", l, rt, err)
			}
		}
	})
}
