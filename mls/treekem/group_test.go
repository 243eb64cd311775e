package treekem

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/ratchettree"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// groupSpec describes a synthetic group for tests and benchmarks. Its tree
// is what a group looks like after a committer has refreshed every path:
// every parent node with a member below it holds a key that all members
// below it know. Removed leaves are then blanked with their direct paths
// (§12.1.3), and unmerged leaves are added to the unmerged_leaves of their
// non-blank ancestors (§12.1.1), so they know no parent key.
//
// Parent hashes are left empty and leaves are of source key_package: the
// trees are not parent-hash valid and leaf signatures do not verify, which
// this package does not check on trees.
type groupSpec struct {
	suite    ciphersuite.ID
	members  int
	removed  []treemath.LeafIndex
	unmerged []treemath.LeafIndex
	// real selects the leaves whose keys (leaf, direct path, signing key)
	// are real key pairs; nil means all. Other nodes get pseudorandom
	// public keys, which HPKE over X25519 encrypts to like any other: this
	// keeps a 50,000-member tree cheap to build. Only X25519 suites may
	// restrict it.
	real []treemath.LeafIndex
}

type testGroup struct {
	suite   *ciphersuite.Suite
	n       treemath.LeafCount
	groupID []byte
	rt      wire.RatchetTree
	priv    map[treemath.NodeIndex]*ciphersuite.HPKEPrivateKey
	sig     map[treemath.LeafIndex]*ciphersuite.SigningKey
}

func seedFor(label string, i uint32) []byte {
	h := sha256.New()
	h.Write([]byte("treekem test " + label))
	h.Write(binary.BigEndian.AppendUint32(nil, i))
	return h.Sum(nil)
}

func buildGroup(tb testing.TB, spec groupSpec) *testGroup {
	tb.Helper()
	suite, err := ciphersuite.Lookup(spec.suite)
	if err != nil {
		tb.Fatal(err)
	}
	n, err := treemath.FullLeafCount(uint32(spec.members))
	if err != nil {
		tb.Fatal(err)
	}
	width, _ := n.Width()
	g := &testGroup{
		suite: suite, n: n, groupID: []byte("treekem test group"),
		rt:   make(wire.RatchetTree, width),
		priv: map[treemath.NodeIndex]*ciphersuite.HPKEPrivateKey{},
		sig:  map[treemath.LeafIndex]*ciphersuite.SigningKey{},
	}
	// Which nodes need real keys.
	needReal := func(treemath.NodeIndex) bool { return true }
	if spec.real != nil {
		set := map[treemath.NodeIndex]bool{}
		for _, l := range spec.real {
			x := leafNode(l)
			set[x] = true
			dp, _ := treemath.DirectPath(x, n)
			for _, p := range dp {
				set[p] = true
			}
		}
		needReal = func(x treemath.NodeIndex) bool { return set[x] }
	}
	isMember := make([]bool, n)
	for i := range spec.members {
		isMember[i] = true
	}
	type keyJob struct {
		node treemath.NodeIndex
		real bool
	}
	var jobs []keyJob
	for i := range treemath.LeafIndex(n) {
		if isMember[i] {
			x := leafNode(i)
			jobs = append(jobs, keyJob{x, needReal(x)})
		}
	}
	for x := treemath.NodeIndex(1); uint32(x) < width; x += 2 {
		lo := uint64(x) - (uint64(1)<<treemath.Level(x) - 1)
		if lo/2 < uint64(spec.members) {
			jobs = append(jobs, keyJob{x, needReal(x)})
		}
	}
	pubs := make([][]byte, width)
	var mu sync.Mutex
	if err := parallelFor(len(jobs), func(i int) error {
		j := jobs[i]
		seed := seedFor("node", uint32(j.node))
		if !j.real {
			pubs[j.node] = seed // a pseudorandom X25519 public key
			return nil
		}
		k, err := suite.DeriveKeyPair(seed)
		if err != nil {
			return err
		}
		pubs[j.node] = k.PublicKey()
		mu.Lock()
		g.priv[j.node] = k
		mu.Unlock()
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	for i := range treemath.LeafIndex(n) {
		if !isMember[i] {
			continue
		}
		x := leafNode(i)
		var sigPub []byte
		if _, ok := g.priv[x]; ok {
			sk, err := suite.GenerateSigningKey(newSeedReader(seedFor("sig", uint32(i))))
			if err != nil {
				tb.Fatal(err)
			}
			g.sig[i] = sk
			sigPub = sk.PublicKey()
		} else {
			sigPub = seedFor("sigpub", uint32(i))
		}
		g.rt[x] = &wire.Node{NodeType: wire.NodeTypeLeaf, LeafNode: testLeaf(suite, i, pubs[x], sigPub)}
	}
	for x := treemath.NodeIndex(1); uint32(x) < width; x += 2 {
		if pubs[x] != nil {
			g.rt[x] = &wire.Node{NodeType: wire.NodeTypeParent, ParentNode: &wire.ParentNode{EncryptionKey: pubs[x], ParentHash: []byte{}}}
		}
	}
	for _, l := range spec.removed {
		g.blankLeafAndPath(l)
	}
	for _, l := range spec.unmerged {
		x := leafNode(l)
		if g.rt[x] == nil {
			tb.Fatalf("unmerged leaf %d is blank", l)
		}
		dp, _ := treemath.DirectPath(x, n)
		for _, p := range dp {
			if pn := g.rt[p]; pn != nil {
				pn.ParentNode.UnmergedLeaves = append(pn.ParentNode.UnmergedLeaves, uint32(l))
				slices.Sort(pn.ParentNode.UnmergedLeaves)
			}
		}
	}
	// The wire form must not end with a blank node (§12.4.3.3).
	for len(g.rt) > 0 && g.rt[len(g.rt)-1] == nil {
		g.rt = g.rt[:len(g.rt)-1]
	}
	return g
}

func (g *testGroup) blankLeafAndPath(l treemath.LeafIndex) {
	x := leafNode(l)
	g.rt[x] = nil
	dp, _ := treemath.DirectPath(x, g.n)
	for _, p := range dp {
		g.rt[p] = nil
	}
}

func testLeaf(suite *ciphersuite.Suite, i treemath.LeafIndex, encPub, sigPub []byte) *wire.LeafNode {
	return &wire.LeafNode{
		EncryptionKey: encPub,
		SignatureKey:  sigPub,
		Credential:    wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: fmt.Appendf(nil, "member %d", i)},
		Capabilities: wire.Capabilities{
			Versions:     []wire.ProtocolVersion{wire.ProtocolVersionMLS10},
			CipherSuites: []uint16{uint16(suite.ID())},
			Extensions:   []wire.ExtensionType{},
			Proposals:    []wire.ProposalType{},
			Credentials:  []wire.CredentialType{wire.CredentialTypeBasic},
		},
		LeafNodeSource: wire.LeafNodeSourceKeyPackage,
		Lifetime:       &wire.Lifetime{NotBefore: 0, NotAfter: 1<<64 - 1},
		Extensions:     []wire.Extension{},
		Signature:      []byte{},
	}
}

// tree returns a fresh public tree of the group.
func (g *testGroup) tree(tb testing.TB) *ratchettree.Tree {
	tb.Helper()
	t, err := ratchettree.FromWire(g.suite, g.rt)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// state returns the private state of leaf l: its leaf key and the keys of
// its non-blank ancestors where it is not unmerged.
func (g *testGroup) state(tb testing.TB, l treemath.LeafIndex) *PrivateState {
	tb.Helper()
	x := leafNode(l)
	var nodes []NodeKey
	dp, _ := treemath.DirectPath(x, g.n)
	for _, p := range dp {
		if int(p) >= len(g.rt) || g.rt[p] == nil || slices.Contains(g.rt[p].ParentNode.UnmergedLeaves, uint32(l)) {
			continue
		}
		k := g.priv[p]
		if k == nil {
			tb.Fatalf("no private key for node %d", p)
		}
		nodes = append(nodes, NodeKey{Node: p, Key: k})
	}
	ps, err := NewPrivateState(g.suite, l, g.priv[x], nodes)
	if err != nil {
		tb.Fatal(err)
	}
	return ps
}

// members lists the non-blank leaves.
func (g *testGroup) members() []treemath.LeafIndex {
	var m []treemath.LeafIndex
	for i := 0; i < len(g.rt); i += 2 {
		if g.rt[i] != nil {
			m = append(m, treemath.LeafIndex(i/2))
		}
	}
	return m
}

// groupContext returns a GroupContext callback for epoch 1 of the group.
func (g *testGroup) groupContext() func([]byte) ([]byte, error) {
	return func(th []byte) ([]byte, error) {
		gc := &wire.GroupContext{
			Version: wire.ProtocolVersionMLS10, CipherSuite: uint16(g.suite.ID()),
			GroupID: g.groupID, Epoch: 1, TreeHash: th, ConfirmedTranscriptHash: []byte{},
			Extensions: []wire.Extension{},
		}
		return gc.Bytes(), nil
	}
}

// seedReader yields an endless deterministic stream from a seed.
type seedReader struct {
	seed []byte
	ctr  uint32
	buf  []byte
}

func newSeedReader(seed []byte) *seedReader { return &seedReader{seed: seed} }

func (r *seedReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.buf) == 0 {
			h := sha256.Sum256(append(binary.BigEndian.AppendUint32(nil, r.ctr), r.seed...))
			r.buf = h[:]
			r.ctr++
		}
		c := copy(p[n:], r.buf)
		r.buf = r.buf[c:]
		n += c
	}
	return n, nil
}
