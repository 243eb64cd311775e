package ratchettree

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// Benchmarks at N = 10 ... 50,000 members of suite 0x0001, on full trees
// and on trees with about 10% of the members removed at random. Large
// trees are generated once per process (and cached in the temporary
// directory); run with -benchmem.

var benchSizes = []int{10, 100, 1000, 10000, 50000}

func forEachBenchTree(b *testing.B, f func(b *testing.B, g *genTree)) {
	for _, n := range benchSizes {
		for _, blanks := range []bool{false, true} {
			name := fmt.Sprintf("N=%d/full", n)
			if blanks {
				name = fmt.Sprintf("N=%d/blanks", n)
			}
			b.Run(name, func(b *testing.B) {
				g := benchTree(b, n, blanks)
				b.ResetTimer()
				f(b, g)
			})
		}
	}
}

func decodeBench(b *testing.B, g *genTree) *Tree {
	b.Helper()
	tree, err := Decode(suite1(b), g.data)
	if err != nil {
		b.Fatal(err)
	}
	return tree
}

// cpuTime returns the user+system CPU time of the process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMergePathRehash measures applying an UpdatePath's public keys
// at a random member (MergePath: blank the direct path, set the filtered
// direct path, compute parent hashes) and then the new root tree hash.
func BenchmarkMergePathRehash(b *testing.B) {
	forEachBenchTree(b, func(b *testing.B, g *genTree) {
		tree := decodeBench(b, g)
		tree.TreeHash()
		rng := rand.New(rand.NewPCG(1, 2))
		var senders []treemath.LeafIndex
		for l := range treemath.LeafIndex(tree.LeafCount()) {
			if tree.LeafBytes(l) != nil {
				senders = append(senders, l)
			}
		}
		keys := make([][]byte, 32)
		for i := range keys {
			keys[i] = make([]byte, 32)
			for j := range keys[i] {
				keys[i][j] = byte(rng.Uint32())
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			s := senders[rng.IntN(len(senders))]
			path, _ := tree.FilteredDirectPath(s)
			if _, err := tree.MergePath(s, keys[:len(path)]); err != nil {
				b.Fatal(err)
			}
			if len(tree.TreeHash()) != 32 {
				b.Fatal("no tree hash")
			}
		}
	})
}

// BenchmarkValidate measures Validate of a whole tree, freshly decoded for
// each iteration (decoding is not timed): parent hashes, key uniqueness,
// every leaf's signature and capabilities. It reports the CPU time per
// member, against the budget of 40 µs.
func BenchmarkValidate(b *testing.B) {
	forEachBenchTree(b, func(b *testing.B, g *genTree) {
		opts := &ValidationOptions{GroupID: g.groupID}
		b.ReportAllocs()
		b.StopTimer()
		var cpu time.Duration
		for range b.N {
			tree := decodeBench(b, g)
			runtime.GC()
			c0 := cpuTime()
			b.StartTimer()
			err := tree.Validate(opts)
			b.StopTimer()
			cpu += cpuTime() - c0
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*g.members), "cpu-µs/member")
	})
}

// BenchmarkEncode measures writing the ratchet_tree extension body: Bytes
// straight from the stored encodings, and Wire (which decodes every leaf)
// followed by the codec.
func BenchmarkEncode(b *testing.B) {
	forEachBenchTree(b, func(b *testing.B, g *genTree) {
		tree := decodeBench(b, g)
		b.Run("Bytes", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(g.data)))
			for b.Loop() {
				if len(tree.Bytes()) != len(g.data) {
					b.Fatal("length differs")
				}
			}
		})
		b.Run("Wire+codec", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(g.data)))
			for b.Loop() {
				out, err := codec.Marshal(tree.Wire())
				if err != nil || len(out) != len(g.data) {
					b.Fatal("encoding differs")
				}
			}
		})
	})
}

// BenchmarkDecode measures building a tree from a ratchet_tree extension
// body: Decode (node by node), and wire decoding of the whole
// wire.RatchetTree followed by FromWire.
func BenchmarkDecode(b *testing.B) {
	forEachBenchTree(b, func(b *testing.B, g *genTree) {
		suite := suite1(b)
		b.Run("Decode", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(g.data)))
			for b.Loop() {
				if _, err := Decode(suite, g.data); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("wire+FromWire", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(g.data)))
			for b.Loop() {
				var rt wire.RatchetTree
				if err := codec.Unmarshal(g.data, &rt); err != nil {
					b.Fatal(err)
				}
				if _, err := FromWire(suite, rt); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkTreeHashFull measures hashing a whole freshly decoded tree
// (the first TreeHash after Decode, parallel above 8,192 nodes) and
// RecomputeTreeHash (sequential).
func BenchmarkTreeHashFull(b *testing.B) {
	forEachBenchTree(b, func(b *testing.B, g *genTree) {
		tree := decodeBench(b, g)
		b.Run("first", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tree.mu.Lock()
				tree.dirty.setRange(0, tree.Width()-1, true)
				tree.dirtyHint = int(tree.Width()) // as after Decode
				tree.mu.Unlock()
				tree.TreeHash()
			}
		})
		b.Run("recompute", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tree.RecomputeTreeHash()
			}
		})
	})
}

// heapInUse returns HeapInuse after garbage collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// measureTree returns the heap the tree of g occupies after Decode, after
// wire decoding plus FromWire, and after Validate (which adds the key
// index and fills the hash cache).
func measureTree(tb testing.TB, g *genTree) (decoded, fromWire, validated uint64) {
	suite := suite1(tb)
	base := heapInUse()
	tree, err := Decode(suite, g.data)
	if err != nil {
		tb.Fatal(err)
	}
	decoded = heapInUse() - base
	if err := tree.Validate(&ValidationOptions{GroupID: g.groupID}); err != nil {
		tb.Fatal(err)
	}
	validated = heapInUse() - base
	runtime.KeepAlive(tree)
	tree = nil
	base = heapInUse()
	var rt wire.RatchetTree
	if err := codec.Unmarshal(g.data, &rt); err != nil {
		tb.Fatal(err)
	}
	tree2, err := FromWire(suite, rt)
	if err != nil {
		tb.Fatal(err)
	}
	rt = nil
	fromWire = heapInUse() - base
	runtime.KeepAlive(tree2)
	return decoded, fromWire, validated
}

// BenchmarkMemory reports the heap held by a tree (HeapInuse after GC,
// before and after building it), in MB: after Decode, after wire decoding
// plus FromWire, and after Validate. The target is 40 MB at 50,000
// members.
func BenchmarkMemory(b *testing.B) {
	forEachBenchTree(b, func(b *testing.B, g *genTree) {
		var d, f, v uint64
		for b.Loop() {
			d, f, v = measureTree(b, g)
		}
		b.ReportMetric(float64(d)/1e6, "MB-decoded")
		b.ReportMetric(float64(f)/1e6, "MB-fromwire")
		b.ReportMetric(float64(v)/1e6, "MB-validated")
		b.ReportMetric(float64(v)/float64(g.members), "B/member")
	})
}

// TestMemoryFootprint checks the heap a 10,000-member tree holds against
// the budget of 40 MB for 50,000 members (800 bytes per member), after
// Decode, after wire decoding plus FromWire, and after Validate. The
// 50,000-member figures come from BenchmarkMemory.
func TestMemoryFootprint(t *testing.T) {
	if testing.Short() {
		t.Skip("generates a 10,000-member tree")
	}
	g := benchTree(t, 10000, false)
	d, f, v := measureTree(t, g)
	t.Logf("10,000 members: %d B/member decoded, %d after FromWire, %d validated",
		d/uint64(g.members), f/uint64(g.members), v/uint64(g.members))
	for name, got := range map[string]uint64{"Decode": d, "FromWire": f, "Validate": v} {
		if per := got / uint64(g.members); per > 800 {
			t.Errorf("%s: %d bytes per member, budget 800", name, per)
		}
	}
}
