package treekem

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/ratchettree"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// The benchmarks run suite 0x0001 on synthetic groups (see groupSpec) of
// 10 to 50,000 members, in two shapes:
//
//   - full: every parent node with a member below it is set, as after a
//     commit by each member; each copath resolution is one node;
//   - blanks: the same tree after removing a random 10% of the members,
//     whose direct paths are blanked (§12.1.3); resolutions grow and a
//     committer encrypts to many more nodes.
//
// Generate times CreateUpdatePath by leaf 0: fresh path secrets, key
// derivations, merging the path and rehashing the tree, the leaf signature,
// the provisional GroupContext (the callback encodes one) and every
// encryption. Process times ProcessUpdatePath of that committer's path by
// its sibling (leaf 1, which decrypts at the lowest node and derives every
// key up to the root) and by the last member (in the other half of the
// tree, which decrypts at the root): shape checks, signature verification,
// merge and parent-hash check, rehash, decryption and derivations. Neither
// includes restoring the tree between iterations (Checkpoint/Rollback, with
// the timer stopped). The trees' own parent hashes and leaf signatures are
// not valid, as nothing timed here verifies them; the committer's new leaf
// is really signed, and its signature and parent hash are verified by every
// Process iteration. Only the leaves and paths of the committer and the two
// receivers hold real key pairs; other nodes hold pseudorandom X25519
// public keys, which cost the committer the same to encrypt to.

var benchSizes = []int{10, 100, 1000, 10000, 50000}

type benchGroup struct {
	g                  *testGroup
	tree               *ratchettree.Tree
	sender, sib, far   treemath.LeafIndex
	path               *wire.UpdatePath
	encryptions, fdpLn int
}

var (
	benchMu     sync.Mutex
	benchGroups = map[string]func() *benchGroup{}
)

// getBenchGroup builds (once per process) the group of the given size and
// shape, and an UpdatePath from its leaf 0.
func getBenchGroup(b *testing.B, members int, blanks bool) *benchGroup {
	key := fmt.Sprint(members, blanks)
	benchMu.Lock()
	f, ok := benchGroups[key]
	if !ok {
		f = sync.OnceValue(func() *benchGroup { return newBenchGroup(b, members, blanks) })
		benchGroups[key] = f
	}
	benchMu.Unlock()
	bg := f()
	if bg == nil {
		b.Fatal("building the group failed")
	}
	return bg
}

func newBenchGroup(b *testing.B, members int, blanks bool) *benchGroup {
	sender, sib, far := treemath.LeafIndex(0), treemath.LeafIndex(1), treemath.LeafIndex(members-1)
	spec := groupSpec{suite: 1, members: members, real: []treemath.LeafIndex{sender, sib, far}}
	if blanks {
		r := rand.New(rand.NewPCG(uint64(members), 1))
		for _, i := range r.Perm(members)[:max(1, members/10)] {
			if l := treemath.LeafIndex(i); l != sender && l != sib && l != far {
				spec.removed = append(spec.removed, l)
			}
		}
	}
	g := buildGroup(b, spec)
	tree, err := ratchettree.FromWire(g.suite, g.rt)
	if err != nil {
		b.Fatal(err)
	}
	bg := &benchGroup{g: g, tree: tree, sender: sender, sib: sib, far: far}
	cp := tree.Checkpoint()
	res, err := CreateUpdatePath(tree, bg.createParams())
	if err != nil {
		b.Fatal(err)
	}
	tree.Rollback(cp)
	bg.path = res.Path
	bg.fdpLn = len(res.Path.Nodes)
	for _, n := range res.Path.Nodes {
		bg.encryptions += len(n.EncryptedPathSecret)
	}
	return bg
}

func (bg *benchGroup) createParams() CreateParams {
	return CreateParams{Sender: bg.sender, GroupID: bg.g.groupID, SigningKey: bg.g.sig[bg.sender], GroupContext: bg.g.groupContext()}
}

func benchShapes(b *testing.B, f func(b *testing.B, bg *benchGroup)) {
	for _, shape := range []string{"full", "blanks"} {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%s/N=%d", shape, n), func(b *testing.B) {
				f(b, getBenchGroup(b, n, shape == "blanks"))
			})
		}
	}
}

func BenchmarkGenerate(b *testing.B) {
	benchShapes(b, func(b *testing.B, bg *benchGroup) {
		p := bg.createParams()
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			cp := bg.tree.Checkpoint()
			b.StartTimer()
			res, err := CreateUpdatePath(bg.tree, p)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			bg.tree.Rollback(cp)
			res.Clear()
			b.StartTimer()
		}
		b.ReportMetric(float64(bg.encryptions), "encryptions/op")
		b.ReportMetric(float64(bg.fdpLn), "pathnodes/op")
	})
}

func benchProcess(b *testing.B, receiver func(*benchGroup) treemath.LeafIndex) {
	benchShapes(b, func(b *testing.B, bg *benchGroup) {
		r := receiver(bg)
		st := bg.g.state(b, r)
		p := ProcessParams{Sender: bg.sender, GroupID: bg.g.groupID, Path: bg.path, GroupContext: bg.g.groupContext()}
		var derived int
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			cp := bg.tree.Checkpoint()
			b.StartTimer()
			res, err := ProcessUpdatePath(bg.tree, st, p)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			bg.tree.Rollback(cp)
			derived = len(res.State.nodes)
			res.Clear()
			b.StartTimer()
		}
		_ = derived
	})
}

// BenchmarkProcessSibling: the receiver decrypts at the lowest node of the
// path and derives every key up to the root.
func BenchmarkProcessSibling(b *testing.B) {
	benchProcess(b, func(bg *benchGroup) treemath.LeafIndex { return bg.sib })
}

// BenchmarkProcessFar: the receiver is in the other half of the tree and
// decrypts the root's path secret.
func BenchmarkProcessFar(b *testing.B) {
	benchProcess(b, func(bg *benchGroup) treemath.LeafIndex { return bg.far })
}

// BenchmarkFloor times the primitives the targets are stated in, in the
// same run, so the table can be read as multiples of them.
func BenchmarkFloor(b *testing.B) {
	suite, _ := ciphersuite.Lookup(1)
	k, _ := suite.DeriveKeyPair([]byte("floor"))
	ps := make([]byte, 32)
	gc := make([]byte, 100)
	kem, ct, _ := suite.EncryptWithLabel(k.PublicKey(), "UpdatePathNode", gc, ps)
	sk, _ := suite.GenerateSigningKey(nil)
	msg := make([]byte, 300)
	sig, _ := suite.SignWithLabel(sk, "LeafNodeTBS", msg)
	b.Run("DeriveKeyPair", func(b *testing.B) {
		for b.Loop() {
			if _, err := nodeKey(suite, ps); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("EncryptWithLabel", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := suite.EncryptWithLabel(k.PublicKey(), "UpdatePathNode", gc, ps); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("DecryptWithLabel", func(b *testing.B) {
		for b.Loop() {
			if _, err := suite.DecryptWithLabel(k, "UpdatePathNode", gc, kem, ct); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("SignWithLabel", func(b *testing.B) {
		for b.Loop() {
			if _, err := suite.SignWithLabel(sk, "LeafNodeTBS", msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("VerifyWithLabel", func(b *testing.B) {
		for b.Loop() {
			if err := suite.VerifyWithLabel(sk.PublicKey(), "LeafNodeTBS", msg, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}
