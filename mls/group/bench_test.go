package group

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/keyschedule"
	"github.com/mlsengine/mlsengine/mls/ratchettree"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treekem"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// The benchmarks run suite 0x0001 on synthetic groups of 2 to 10,000
// members whose tree is full, as after one commit by every member: the
// tree is built by merging one path per member (random public keys for all
// but two members), so that every copath resolution is a single node, and
// every leaf is a properly signed commit leaf with valid parent hashes, so
// that a joiner's tree validation succeeds. Leaf 0 (the committer) and
// the last leaf (the receiver, in the other half of the tree: it decrypts
// at the root) are real members with all their private keys; both start
// from the same epoch secrets.
//
//	Commit:    Commit with a path by leaf 0, then ClearPendingCommit
//	Process:   Process of that commit by the last leaf, then Discard
//	Join:      Join from a Welcome adding one member (tree out of band)
//	Protect:   Protect of 1 KiB of application data
//	Unprotect: Process of such a message

var benchSizes = []int{2, 10, 100, 1000, 10000}

type benchMaterial struct {
	suite       *ciphersuite.Suite
	tree        *ratchettree.Tree
	ctx         wire.GroupContext
	init        []byte
	sender, rcv treemath.LeafIndex
	signer      map[treemath.LeafIndex]*ciphersuite.SigningKey
	priv        map[treemath.LeafIndex]*treekem.PrivateState
}

var (
	benchMu  sync.Mutex
	benchMat = map[int]func() *benchMaterial{}
)

func getBenchMaterial(tb testing.TB, n int) *benchMaterial {
	benchMu.Lock()
	f, ok := benchMat[n]
	if !ok {
		f = sync.OnceValue(func() *benchMaterial { return buildBenchMaterial(tb, n) })
		benchMat[n] = f
	}
	benchMu.Unlock()
	return f()
}

func buildBenchMaterial(tb testing.TB, n int) *benchMaterial {
	suite, _ := ciphersuite.Lookup(1)
	rng := rand.New(rand.NewPCG(uint64(n), 3))
	random := func(k int) []byte {
		b := make([]byte, k)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	m := &benchMaterial{
		suite: suite, sender: 0, rcv: treemath.LeafIndex(n - 1),
		signer: map[treemath.LeafIndex]*ciphersuite.SigningKey{},
		priv:   map[treemath.LeafIndex]*treekem.PrivateState{},
	}
	groupID := []byte("bench")
	caps := *DefaultCapabilities(1)
	leafFor := func(l treemath.LeafIndex, sk *ciphersuite.SigningKey, enc []byte) *wire.LeafNode {
		return &wire.LeafNode{
			EncryptionKey:  enc,
			SignatureKey:   sk.PublicKey(),
			Credential:     wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: []byte(fmt.Sprint("member ", l))},
			Capabilities:   caps,
			LeafNodeSource: wire.LeafNodeSourceCommit,
			Extensions:     []wire.Extension{},
		}
	}
	sk0, err := suite.GenerateSigningKey(nil)
	if err != nil {
		tb.Fatal(err)
	}
	first := leafFor(0, sk0, random(32))
	first.LeafNodeSource = wire.LeafNodeSourceKeyPackage
	first.Lifetime = &wire.Lifetime{NotBefore: 0, NotAfter: 1 << 62}
	if err := signLeafNode(suite, sk0, first, nil, 0); err != nil {
		tb.Fatal(err)
	}
	t, err := ratchettree.New(suite, first)
	if err != nil {
		tb.Fatal(err)
	}
	for l := 1; l < n; l++ {
		ph := leafFor(treemath.LeafIndex(l), sk0, random(32))
		ph.LeafNodeSource = wire.LeafNodeSourceKeyPackage
		ph.Lifetime = &wire.Lifetime{NotBefore: 0, NotAfter: 1 << 62}
		ph.Signature = []byte{}
		if _, err := t.AddLeaf(ph); err != nil {
			tb.Fatal(err)
		}
	}
	// One path per member, the receiver's and the committer's last and
	// with real keys.
	order := make([]treemath.LeafIndex, 0, n)
	for l := 1; l < n-1; l++ {
		order = append(order, treemath.LeafIndex(l))
	}
	if n > 1 {
		order = append(order, m.rcv)
	}
	order = append(order, m.sender)
	nodeKeys := map[treemath.NodeIndex]*ciphersuite.HPKEPrivateKey{}
	leafKeys := map[treemath.LeafIndex]*ciphersuite.HPKEPrivateKey{}
	for _, l := range order {
		real := l == m.sender || l == m.rcv
		fdp, err := t.FilteredDirectPath(l)
		if err != nil {
			tb.Fatal(err)
		}
		pubs := make([][]byte, len(fdp))
		for i, x := range fdp {
			if real {
				k, err := suite.GenerateKeyPair(nil)
				if err != nil {
					tb.Fatal(err)
				}
				nodeKeys[x] = k
				pubs[i] = k.PublicKey()
			} else {
				pubs[i] = random(32)
			}
		}
		ph, err := t.MergePath(l, pubs)
		if err != nil {
			tb.Fatal(err)
		}
		sk := sk0
		if l != 0 {
			if sk, err = suite.GenerateSigningKey(nil); err != nil {
				tb.Fatal(err)
			}
		}
		enc := random(32)
		if real {
			k, _ := suite.GenerateKeyPair(nil)
			leafKeys[l] = k
			enc = k.PublicKey()
			m.signer[l] = sk
		}
		ln := leafFor(l, sk, enc)
		ln.ParentHash = ph
		if err := signLeafNode(suite, sk, ln, groupID, uint32(l)); err != nil {
			tb.Fatal(err)
		}
		if err := t.SetLeaf(l, ln); err != nil {
			tb.Fatal(err)
		}
	}
	for l := range m.signer {
		fdp, _ := t.FilteredDirectPath(l)
		var nks []treekem.NodeKey
		for _, x := range fdp {
			if k := nodeKeys[x]; k != nil && string(k.PublicKey()) == string(t.EncryptionKey(x)) {
				nks = append(nks, treekem.NodeKey{Node: x, Key: k})
			}
		}
		ps, err := treekem.NewPrivateState(suite, l, leafKeys[l], nks)
		if err != nil {
			tb.Fatal(err)
		}
		if err := ps.Check(t); err != nil {
			tb.Fatal(err)
		}
		m.priv[l] = ps
	}
	t.ResetChanged()
	m.tree = t
	m.ctx = wire.GroupContext{
		Version: wire.ProtocolVersionMLS10, CipherSuite: 1, GroupID: groupID, Epoch: 0,
		TreeHash: t.TreeHash(), ConfirmedTranscriptHash: []byte{}, Extensions: []wire.Extension{},
	}
	m.init = random(suite.HashLen())
	return m
}

// member builds the state of one of the two real members.
func (m *benchMaterial) member(tb testing.TB, l treemath.LeafIndex) *Group {
	cfg := &Config{Now: func() time.Time { return time.Time{} }}
	g := newGroup(cfg, m.suite, m.signer[l])
	g.ctx = cloneContext(&m.ctx)
	g.tree = m.tree.Clone()
	init, err := keyschedule.NewInitSecret(m.suite, secret.Copy(m.init))
	if err != nil {
		tb.Fatal(err)
	}
	ctx := g.ctx.Bytes()
	j, _ := init.Joiner(secret.Secret{}, ctx)
	ms, _ := j.WithPSK(secret.Secret{})
	e, err := ms.Epoch(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if g.confTag, err = e.ConfirmationTag(g.ctx.ConfirmedTranscriptHash); err != nil {
		tb.Fatal(err)
	}
	g.interim, _ = keyschedule.InterimTranscriptHash(m.suite, g.ctx.ConfirmedTranscriptHash, g.confTag)
	priv, _ := treekem.NewPrivateState(m.suite, l, m.priv[l].LeafKey(), m.priv[l].Nodes())
	if err := g.installEpoch(e, priv); err != nil {
		tb.Fatal(err)
	}
	g.TakeChanges()
	return g
}

func forSizes(b *testing.B, f func(b *testing.B, m *benchMaterial)) {
	for _, n := range benchSizes {
		if testing.Short() && n > 1000 {
			continue
		}
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			m := getBenchMaterial(b, n)
			b.ReportAllocs()
			f(b, m)
		})
	}
}

func BenchmarkCommitWithPath(b *testing.B) {
	forSizes(b, func(b *testing.B, m *benchMaterial) {
		g := m.member(b, m.sender)
		b.ResetTimer()
		for b.Loop() {
			if _, err := g.Commit(&CommitOptions{ForcePath: true}); err != nil {
				b.Fatal(err)
			}
			g.ClearPendingCommit()
		}
		g.TakeChanges()
	})
}

func BenchmarkProcessCommit(b *testing.B) {
	forSizes(b, func(b *testing.B, m *benchMaterial) {
		s, r := m.member(b, m.sender), m.member(b, m.rcv)
		res, err := s.Commit(&CommitOptions{ForcePath: true})
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for b.Loop() {
			rm, err := r.Process(res.Commit)
			if err != nil {
				b.Fatal(err)
			}
			rm.Commit.Discard()
		}
	})
}

func BenchmarkJoinWelcome(b *testing.B) {
	forSizes(b, func(b *testing.B, m *benchMaterial) {
		s := m.member(b, m.sender)
		sk, _ := m.suite.GenerateSigningKey(nil)
		id := &Identity{Credential: wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: []byte("joiner")}, SigningKey: sk}
		cfg := &Config{}
		kp, err := NewKeyPackage(1, id, cfg, &KeyPackageOptions{LastResort: true}) // reusable
		if err != nil {
			b.Fatal(err)
		}
		res, err := s.Commit(&CommitOptions{Proposals: []*wire.Proposal{{ProposalType: wire.ProposalTypeAdd, Add: &wire.Add{KeyPackage: *kp.KeyPackage}}}})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.MergePendingCommit(); err != nil {
			b.Fatal(err)
		}
		opts := &JoinOptions{RatchetTree: s.RatchetTreeBytes()}
		b.ResetTimer()
		for b.Loop() {
			if _, err := Join(cfg, res.Welcome.Welcome, kp, opts); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkProtect1KiB(b *testing.B) {
	data := make([]byte, 1024)
	forSizes(b, func(b *testing.B, m *benchMaterial) {
		s := m.member(b, m.sender)
		b.SetBytes(1024)
		b.ResetTimer()
		for b.Loop() {
			if _, err := s.Protect(data, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkUnprotect1KiB(b *testing.B) {
	data := make([]byte, 1024)
	forSizes(b, func(b *testing.B, m *benchMaterial) {
		s, r := m.member(b, m.sender), m.member(b, m.rcv)
		b.SetBytes(1024)
		const batch = 1024
		msgs := make([]*wire.MLSMessage, 0, batch)
		b.ResetTimer()
		for b.Loop() {
			if len(msgs) == 0 {
				b.StopTimer()
				for range batch {
					msg, err := s.Protect(data, nil)
					if err != nil {
						b.Fatal(err)
					}
					msgs = append(msgs, msg)
				}
				b.StartTimer()
			}
			msg := msgs[0]
			msgs = msgs[1:]
			if _, err := r.Process(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestBenchMaterialValid checks that the synthetic groups are valid MLS
// groups: the tree validates and the two real members follow each other's
// commits.
func TestBenchMaterialValid(t *testing.T) {
	for _, n := range []int{2, 3, 10, 33} {
		m := getBenchMaterial(t, n)
		if err := m.tree.Clone().Validate(&ratchettree.ValidationOptions{GroupID: m.ctx.GroupID}); err != nil {
			t.Fatalf("%d members: %v", n, err)
		}
		s, r := m.member(t, m.sender), m.member(t, m.rcv)
		res, err := s.Commit(&CommitOptions{ForcePath: true})
		if err != nil {
			t.Fatal(err)
		}
		s.MergePendingCommit()
		rm, err := r.Process(res.Commit)
		if err != nil {
			t.Fatalf("%d members: %v", n, err)
		}
		r.MergeStagedCommit(rm.Commit)
		if !s.EpochAuthenticator().Equal(r.EpochAuthenticator()) {
			t.Fatal("disagree")
		}
	}
}
