package treemath

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
)

// model is an independent description of a perfect tree, built by recursion
// on subtrees rather than by bit manipulation: a subtree of size leaves
// whose leftmost leaf is lm spans nodes [2lm, 2lm+2size-2] and is rooted in
// the middle.
type model struct {
	root                       NodeIndex
	left, right, parent, level map[NodeIndex]NodeIndex
}

func buildModel(n LeafCount) *model {
	m := &model{
		left:   map[NodeIndex]NodeIndex{},
		right:  map[NodeIndex]NodeIndex{},
		parent: map[NodeIndex]NodeIndex{},
		level:  map[NodeIndex]NodeIndex{},
	}
	var build func(lm, size uint32, lvl NodeIndex) NodeIndex
	build = func(lm, size uint32, lvl NodeIndex) NodeIndex {
		x := NodeIndex(2*lm + size - 1)
		m.level[x] = lvl
		if size == 1 {
			return x
		}
		l := build(lm, size/2, lvl-1)
		r := build(lm+size/2, size/2, lvl-1)
		m.left[x], m.right[x] = l, r
		m.parent[l], m.parent[r] = x, x
		return x
	}
	d := NodeIndex(0)
	for 1<<d < n {
		d++
	}
	m.root = build(0, uint32(n), d)
	return m
}

func TestAgainstModel(t *testing.T) {
	for n := LeafCount(1); n <= 256; n *= 2 {
		m := buildModel(n)
		w, err := NodeWidth(n)
		if err != nil || int(w) != len(m.level) {
			t.Fatalf("n=%d: NodeWidth = %d, %v; want %d", n, w, err, len(m.level))
		}
		if r, err := Root(n); err != nil || r != m.root {
			t.Fatalf("n=%d: Root = %d, %v; want %d", n, r, err, m.root)
		}
		for x := NodeIndex(0); x < NodeIndex(w); x++ {
			if Level(x) != uint(m.level[x]) {
				t.Fatalf("n=%d: Level(%d) = %d, want %d", n, x, Level(x), m.level[x])
			}
			check := func(name string, got NodeIndex, err error, want NodeIndex, ok bool, undefined error) {
				t.Helper()
				if !ok {
					if !errors.Is(err, undefined) {
						t.Fatalf("n=%d: %s(%d) = %d, %v; want %v", n, name, x, got, err, undefined)
					}
					return
				}
				if err != nil || got != want {
					t.Fatalf("n=%d: %s(%d) = %d, %v; want %d", n, name, x, got, err, want)
				}
			}
			l, ok := m.left[x]
			got, err := Left(x, n)
			check("Left", got, err, l, ok, ErrNoChildren)
			r, ok := m.right[x]
			got, err = Right(x, n)
			check("Right", got, err, r, ok, ErrNoChildren)
			p, ok := m.parent[x]
			got, err = Parent(x, n)
			check("Parent", got, err, p, ok, ErrNoParent)
			var s NodeIndex
			if ok {
				s = m.left[p]
				if s == x {
					s = m.right[p]
				}
			}
			got, err = Sibling(x, n)
			check("Sibling", got, err, s, ok, ErrNoParent)

			// Direct path and copath from the model's parent links.
			var dp, cp []NodeIndex
			for y := x; y != m.root; y = m.parent[y] {
				py := m.parent[y]
				dp = append(dp, py)
				sy := m.left[py]
				if sy == y {
					sy = m.right[py]
				}
				cp = append(cp, sy)
			}
			gdp, err := DirectPath(x, n)
			if err != nil || !slices.Equal(gdp, dp) || gdp == nil {
				t.Fatalf("n=%d: DirectPath(%d) = %v, %v; want %v", n, x, gdp, err, dp)
			}
			gcp, err := Copath(x, n)
			if err != nil || !slices.Equal(gcp, cp) || gcp == nil {
				t.Fatalf("n=%d: Copath(%d) = %v, %v; want %v", n, x, gcp, err, cp)
			}
			if cap(gdp) != len(dp) || cap(gcp) != len(cp) {
				t.Fatalf("n=%d: path slices over-allocated", n)
			}
		}
	}
}

// commonAncestorSemantic is Appendix C's common_ancestor_semantic.
func commonAncestorSemantic(t *testing.T, x, y NodeIndex, n LeafCount) NodeIndex {
	dx, _ := DirectPath(x, n)
	dy, _ := DirectPath(y, n)
	dx = append([]NodeIndex{x}, dx...)
	dy = append([]NodeIndex{y}, dy...)
	best, found := NodeIndex(0), false
	for _, a := range dx {
		if slices.Contains(dy, a) && (!found || Level(a) < Level(best)) {
			best, found = a, true
		}
	}
	if !found {
		t.Fatalf("no common ancestor of %d and %d", x, y)
	}
	return best
}

func TestCommonAncestor(t *testing.T) {
	for n := LeafCount(1); n <= 32; n *= 2 {
		w, _ := NodeWidth(n)
		for x := NodeIndex(0); x < NodeIndex(w); x++ {
			for y := NodeIndex(0); y < NodeIndex(w); y++ {
				got, err := CommonAncestor(x, y, n)
				want := commonAncestorSemantic(t, x, y, n)
				if err != nil || got != want {
					t.Fatalf("n=%d: CommonAncestor(%d, %d) = %d, %v; want %d", n, x, y, got, err, want)
				}
			}
		}
	}
}

func TestLargeTrees(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for d := 0; d <= 31; d++ {
		n := LeafCount(1) << d
		w, err := NodeWidth(n)
		if err != nil || uint64(w) != 2*uint64(n)-1 {
			t.Fatalf("NodeWidth(2^%d) = %d, %v", d, w, err)
		}
		r, _ := Root(n)
		if r != NodeIndex(n-1) {
			t.Fatalf("Root(2^%d) = %d", d, r)
		}
		for range 200 {
			x := NodeIndex(rng.Uint32N(w))
			// Parent/child round trips.
			if p, err := Parent(x, n); err == nil {
				l, err1 := Left(p, n)
				rr, err2 := Right(p, n)
				s, err3 := Sibling(x, n)
				if err1 != nil || err2 != nil || err3 != nil || (l != x && rr != x) || (s != l && s != rr) || s == x {
					t.Fatalf("2^%d: inconsistent family around %d", d, x)
				}
				if Level(p) != Level(x)+1 {
					t.Fatalf("2^%d: level of parent of %d", d, x)
				}
			} else if x != r || !errors.Is(err, ErrNoParent) {
				t.Fatalf("2^%d: Parent(%d): %v", d, x, err)
			}
			if !IsLeaf(x) {
				l, _ := Left(x, n)
				rr, _ := Right(x, n)
				if pl, _ := Parent(l, n); pl != x {
					t.Fatalf("2^%d: Parent(Left(%d)) = %d", d, x, pl)
				}
				if pr, _ := Parent(rr, n); pr != x {
					t.Fatalf("2^%d: Parent(Right(%d)) = %d", d, x, pr)
				}
			}
			dp, err := DirectPath(x, n)
			if err != nil || len(dp) != d-int(Level(x)) || (len(dp) > 0 && dp[len(dp)-1] != r) {
				t.Fatalf("2^%d: DirectPath(%d) = %v, %v", d, x, dp, err)
			}
			cp, err := Copath(x, n)
			if err != nil || len(cp) != len(dp) {
				t.Fatalf("2^%d: Copath(%d) = %v, %v", d, x, cp, err)
			}
			y := NodeIndex(rng.Uint32N(w))
			a, err := CommonAncestor(x, y, n)
			if err != nil {
				t.Fatal(err)
			}
			if !onPath(a, x, dp) {
				t.Fatalf("2^%d: CommonAncestor(%d, %d) = %d not above %d", d, x, y, a, x)
			}
			dy, _ := DirectPath(y, n)
			if !onPath(a, y, dy) {
				t.Fatalf("2^%d: CommonAncestor(%d, %d) = %d not above %d", d, x, y, a, y)
			}
			if IsLeaf(x) {
				l, err := NodeToLeaf(x, n)
				if err != nil {
					t.Fatal(err)
				}
				if back, err := LeafToNode(l, n); err != nil || back != x {
					t.Fatalf("2^%d: leaf round trip of %d", d, x)
				}
			} else if _, err := NodeToLeaf(x, n); !errors.Is(err, ErrNotLeaf) {
				t.Fatalf("2^%d: NodeToLeaf(%d) = %v", d, x, err)
			}
		}
		// The rightmost leaf and the root at the extremes.
		last := NodeIndex(w - 1)
		if dp, err := DirectPath(last, n); err != nil || len(dp) != d {
			t.Fatalf("2^%d: DirectPath(last) = %v, %v", d, dp, err)
		}
		if _, err := Parent(NodeIndex(w), n); !errors.Is(err, ErrOutOfRange) && w != 1<<32-1 {
			t.Fatalf("2^%d: Parent(width) = %v", d, err)
		}
	}
}

func onPath(a, x NodeIndex, dp []NodeIndex) bool {
	return a == x || slices.Contains(dp, a)
}

// TestNeverPanics calls every function on arbitrary inputs, including
// invalid leaf counts and out-of-range indices.
func TestNeverPanics(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	counts := []LeafCount{0, 1, 2, 3, 5, 6, 1 << 30, 1<<31 - 1, 1 << 31, 1<<31 + 1, 1<<32 - 1}
	idx := []uint32{0, 1, 2, 3, 1<<31 - 1, 1 << 31, 1<<32 - 2, 1<<32 - 1}
	for range 1000 {
		counts = append(counts, LeafCount(rng.Uint32()))
		idx = append(idx, rng.Uint32())
	}
	for _, n := range counts {
		_, _ = NodeWidth(n)
		_, _ = Root(n)
		_, _ = n.Width()
		_, _ = FullLeafCount(uint32(n))
		for _, i := range idx {
			x := NodeIndex(i)
			_ = Level(x)
			_ = IsLeaf(x)
			for _, f := range []func(NodeIndex, LeafCount) (NodeIndex, error){Left, Right, Parent, Sibling} {
				v, err := f(x, n)
				if err == nil {
					if w, _ := NodeWidth(n); uint32(v) >= w || !n.Valid() {
						t.Fatalf("n=%d x=%d: result %d outside tree", n, x, v)
					}
				}
			}
			_, _ = DirectPath(x, n)
			_, _ = Copath(x, n)
			_, _ = CommonAncestor(x, NodeIndex(idx[int(i)%len(idx)]), n)
			_, _ = LeafToNode(LeafIndex(i), n)
			_, _ = NodeToLeaf(x, n)
		}
	}
}

func TestErrors(t *testing.T) {
	for _, n := range []LeafCount{0, 3, 6, 1<<31 + 1, 1<<32 - 1} {
		if _, err := Root(n); !errors.Is(err, ErrInvalidLeafCount) {
			t.Errorf("Root(%d) = %v", n, err)
		}
		if _, err := Parent(0, n); !errors.Is(err, ErrInvalidLeafCount) {
			t.Errorf("Parent(0, %d) = %v", n, err)
		}
	}
	if _, err := NodeWidth(1<<31 + 1); !errors.Is(err, ErrInvalidLeafCount) {
		t.Error("NodeWidth(2^31+1) accepted")
	}
	if w, err := NodeWidth(3); err != nil || w != 5 {
		t.Errorf("NodeWidth(3) = %d, %v", w, err)
	}
	if w, err := NodeWidth(0); err != nil || w != 0 {
		t.Errorf("NodeWidth(0) = %d, %v", w, err)
	}
	if _, err := Left(2, 4); !errors.Is(err, ErrNoChildren) {
		t.Errorf("Left(leaf) = %v", err)
	}
	if _, err := Right(7, 4); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("Right(7, 4) = %v", err)
	}
	if _, err := Sibling(3, 4); !errors.Is(err, ErrNoParent) {
		t.Errorf("Sibling(root) = %v", err)
	}
	if _, err := LeafToNode(4, 4); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("LeafToNode(4, 4) = %v", err)
	}
	if _, err := CommonAncestor(0, 7, 4); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("CommonAncestor out of range = %v", err)
	}
	if p, err := DirectPath(3, 4); err != nil || p == nil || len(p) != 0 {
		t.Errorf("DirectPath(root) = %v, %v", p, err)
	}
	for _, c := range []struct{ in, want uint32 }{{0, 1}, {1, 1}, {2, 2}, {3, 4}, {5, 8}, {50000, 65536}, {1 << 31, 1 << 31}} {
		if got, err := FullLeafCount(c.in); err != nil || uint32(got) != c.want {
			t.Errorf("FullLeafCount(%d) = %d, %v", c.in, got, err)
		}
	}
	if _, err := FullLeafCount(1<<31 + 1); !errors.Is(err, ErrInvalidLeafCount) {
		t.Error("FullLeafCount(2^31+1) accepted")
	}
}

func TestAllocations(t *testing.T) {
	n := LeafCount(1 << 16)
	buf := make([]NodeIndex, 0, 32)
	allocs := testing.AllocsPerRun(100, func() {
		x := NodeIndex(12345)
		_, _ = Parent(x, n)
		_, _ = Sibling(x, n)
		_, _ = Left(x, n)
		_, _ = Right(x, n)
		_, _ = Root(n)
		_, _ = CommonAncestor(x, 54321, n)
		_, _ = Parent(1<<20, n) // error path
		buf, _ = AppendDirectPath(buf[:0], x, n)
		buf, _ = AppendCopath(buf[:0], x, n)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run", allocs)
	}
	if a := testing.AllocsPerRun(100, func() { _, _ = DirectPath(12345, n) }); a != 1 {
		t.Fatalf("DirectPath: %v allocations, want 1", a)
	}
}

type treeMathVector struct {
	NLeaves LeafCount    `json:"n_leaves"`
	NNodes  uint32       `json:"n_nodes"`
	Root    NodeIndex    `json:"root"`
	Left    []*NodeIndex `json:"left"`
	Right   []*NodeIndex `json:"right"`
	Parent  []*NodeIndex `json:"parent"`
	Sibling []*NodeIndex `json:"sibling"`
}

func TestVectors(t *testing.T) {
	data, err := os.ReadFile("../../testdata/vectors/tree-math.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []treeMathVector
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range vs {
		w, err := NodeWidth(v.NLeaves)
		if err != nil || w != v.NNodes {
			t.Fatalf("n=%d: NodeWidth = %d, %v", v.NLeaves, w, err)
		}
		if r, err := Root(v.NLeaves); err != nil || r != v.Root {
			t.Fatalf("n=%d: Root = %d, %v", v.NLeaves, r, err)
		}
		for name, c := range map[string]struct {
			f    func(NodeIndex, LeafCount) (NodeIndex, error)
			want []*NodeIndex
		}{"left": {Left, v.Left}, "right": {Right, v.Right}, "parent": {Parent, v.Parent}, "sibling": {Sibling, v.Sibling}} {
			if len(c.want) != int(w) {
				t.Fatalf("n=%d: %s has %d entries", v.NLeaves, name, len(c.want))
			}
			for i, want := range c.want {
				got, err := c.f(NodeIndex(i), v.NLeaves)
				if (want == nil) != (err != nil) || (want != nil && got != *want) {
					t.Fatalf("n=%d: %s(%d) = %d, %v", v.NLeaves, name, i, got, err)
				}
			}
		}
	}
}

func BenchmarkDirectPath(b *testing.B) {
	b.ReportAllocs()
	n := LeafCount(1 << 16)
	buf := make([]NodeIndex, 0, 32)
	for i := 0; b.Loop(); i++ {
		buf, _ = AppendDirectPath(buf[:0], NodeIndex(2*(i&0xffff)), n)
	}
}

func BenchmarkCommonAncestor(b *testing.B) {
	b.ReportAllocs()
	n := LeafCount(1 << 16)
	for i := 0; b.Loop(); i++ {
		_, _ = CommonAncestor(NodeIndex(2*(i&0xffff)), NodeIndex(i&0x1ffff), n)
	}
}
