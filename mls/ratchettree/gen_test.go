package ratchettree

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// This file generates large valid trees for benchmarks and memory tests:
// N members of suite 0x0001 with real Ed25519 keys and signatures, and
// parent-hash chains as if member 0, 1, ..., N-1 had committed in turn
// (each parent node was last set by the rightmost member below it).
//
// The generator computes hashes with package wire's hash input types and
// Suite.Hash, independently of the package's own hashing code, and every
// generated tree is validated by the package before use.

const genVersion = 1 // bump when the generator's output changes

type genTree struct {
	data    []byte // ratchet_tree extension body
	groupID []byte
	members int
}

var (
	genMu    sync.Mutex
	genCache = map[string]*genTree{}
)

// benchTree returns the tree of n members, full or with about 10% of them
// removed at random, generating it at most once per process and caching
// its encoding in the temporary directory across runs.
func benchTree(tb testing.TB, n int, blanks bool) *genTree {
	tb.Helper()
	key := fmt.Sprintf("v%d-n%d-blanks%v", genVersion, n, blanks)
	genMu.Lock()
	defer genMu.Unlock()
	if g := genCache[key]; g != nil {
		return g
	}
	groupID := []byte("ratchettree benchmark group")
	path := filepath.Join(os.TempDir(), "mlsengine-ratchettree-"+key+".bin")
	g := &genTree{groupID: groupID}
	if data, err := os.ReadFile(path); err == nil {
		g.data = data
	} else {
		if blanks {
			full := benchTreeLocked(tb, n)
			g.data = removeRandom(tb, full, n/10)
		} else {
			g.data = generate(tb, n, groupID)
		}
		_ = os.WriteFile(path, g.data, 0o600) // best effort
	}
	tree, err := Decode(suite1(tb), g.data)
	if err != nil {
		tb.Fatal(err)
	}
	g.members = tree.MemberCount()
	genCache[key] = g
	return g
}

func benchTreeLocked(tb testing.TB, n int) []byte {
	genMu.Unlock()
	defer genMu.Lock()
	return benchTree(tb, n, false).data
}

func suite1(tb testing.TB) *ciphersuite.Suite { return mustSuite(tb, 1) }

// removeRandom removes k random members of the encoded tree.
func removeRandom(tb testing.TB, data []byte, k int) []byte {
	tree, err := Decode(suite1(tb), data)
	if err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(2, uint64(k)))
	for range k {
		for {
			l := treemath.LeafIndex(rng.IntN(int(tree.LeafCount())))
			if tree.LeafBytes(l) != nil && tree.MemberCount() > 1 {
				if err := tree.RemoveLeaf(l); err != nil {
					tb.Fatal(err)
				}
				break
			}
		}
	}
	return tree.Bytes()
}

// generator holds the state of one generation.
type generator struct {
	tb      testing.TB
	suite   *ciphersuite.Suite
	groupID []byte
	members uint32
	rng     *rand.ChaCha8
	nodes   []*wire.Node
	hashes  [][]byte
	sigKeys []*ciphersuite.SigningKey
}

func generate(tb testing.TB, members int, groupID []byte) []byte {
	n, err := treemath.FullLeafCount(uint32(members))
	if err != nil {
		tb.Fatal(err)
	}
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(members))
	g := &generator{
		tb:      tb,
		suite:   suite1(tb),
		groupID: groupID,
		members: uint32(members),
		rng:     rand.NewChaCha8(seed),
		nodes:   make([]*wire.Node, width(uint32(n))),
		hashes:  make([][]byte, width(uint32(n))),
		sigKeys: make([]*ciphersuite.SigningKey, members),
	}
	// Signing keys, in parallel; each from its own seed.
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < members; i += workers {
				var s [ed25519.SeedSize]byte
				binary.LittleEndian.PutUint64(s[:], uint64(i))
				binary.LittleEndian.PutUint64(s[8:], uint64(members))
				k, err := g.suite.ParseSigningKey(s[:])
				if err != nil {
					panic(err)
				}
				g.sigKeys[i] = k
			}
		})
	}
	wg.Wait()
	g.finish(rootOf(uint32(n)), []byte{})
	last := len(g.nodes) - 1
	for g.nodes[last] == nil {
		last--
	}
	b, err := codec.Marshal(wire.RatchetTree(g.nodes[:last+1]))
	if err != nil {
		tb.Fatal(err)
	}
	// codec.Marshal of RatchetTree writes the vector; the extension body
	// is exactly that.
	return b
}

func (g *generator) random(n int) []byte {
	b := make([]byte, n)
	g.rng.Read(b)
	return b
}

// hasMembers reports whether the subtree under x holds a member.
func (g *generator) hasMembers(x uint32) bool {
	lo, _ := leafSpan(x)
	return lo < g.members
}

// finish fills the subtree under x, whose topmost non-blank node must carry
// parent hash ph, and computes its tree hashes.
func (g *generator) finish(x uint32, ph []byte) {
	if x%2 == 0 {
		l := x / 2
		if l < g.members {
			g.nodes[x] = &wire.Node{NodeType: wire.NodeTypeLeaf, LeafNode: g.leaf(l, ph)}
		}
		g.hashNode(x)
		return
	}
	l, r := left(x), right(x)
	if !g.hasMembers(r) {
		// A blank parent with members on its left only: the chain of the
		// rightmost member passes through to the left.
		g.finish(l, ph)
		g.finish(r, nil)
		g.hashNode(x)
		return
	}
	p := &wire.ParentNode{EncryptionKey: g.random(32), ParentHash: ph}
	g.nodes[x] = &wire.Node{NodeType: wire.NodeTypeParent, ParentNode: p}
	// The left child was last set by an older commit: its parent hash
	// pointed at a version of x that no longer exists.
	g.finish(l, g.random(32))
	in := wire.ParentHashInput{EncryptionKey: p.EncryptionKey, ParentHash: p.ParentHash, OriginalSiblingTreeHash: g.hashes[l]}
	g.finish(r, g.suite.Hash(in.Bytes()))
	g.hashNode(x)
}

func (g *generator) leaf(l uint32, ph []byte) *wire.LeafNode {
	ln := &wire.LeafNode{
		EncryptionKey: g.random(32),
		SignatureKey:  g.sigKeys[l].PublicKey(),
		Credential:    wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: fmt.Appendf(nil, "member-%08d@example.org", l)},
		Capabilities: wire.Capabilities{
			Versions:     []wire.ProtocolVersion{1},
			CipherSuites: []uint16{1},
			Credentials:  []wire.CredentialType{wire.CredentialTypeBasic},
		},
		LeafNodeSource: wire.LeafNodeSourceCommit,
		ParentHash:     ph,
	}
	sig, err := g.suite.SignWithLabel(g.sigKeys[l], "LeafNodeTBS", ln.TBS(g.groupID, l))
	if err != nil {
		g.tb.Fatal(err)
	}
	ln.Signature = sig
	return ln
}

func (g *generator) hashNode(x uint32) {
	var in wire.TreeHashInput
	if x%2 == 0 {
		in = wire.TreeHashInput{NodeType: wire.NodeTypeLeaf, LeafNode: &wire.LeafNodeHashInput{LeafIndex: x / 2}}
		if n := g.nodes[x]; n != nil {
			in.LeafNode.LeafNode = n.LeafNode
		}
	} else {
		in = wire.TreeHashInput{NodeType: wire.NodeTypeParent, ParentNode: &wire.ParentNodeHashInput{
			LeftHash: g.hashes[left(x)], RightHash: g.hashes[right(x)],
		}}
		if n := g.nodes[x]; n != nil {
			in.ParentNode.ParentNode = n.ParentNode
		}
	}
	g.hashes[x] = g.suite.Hash(in.Bytes())
}

func TestGeneratedTreesValidate(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 10, 100} {
		for _, blanks := range []bool{false, true} {
			g := benchTree(t, n, blanks)
			tree, err := Decode(suite1(t), g.data)
			if err != nil {
				t.Fatal(err)
			}
			if err := tree.Validate(&ValidationOptions{GroupID: g.groupID}); err != nil {
				t.Errorf("n=%d blanks=%v: %v", n, blanks, err)
			}
		}
	}
}
