package ratchettree

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// sim drives a tree the way a group does, with real signatures: members
// join with key_package leaves, update, commit full paths and are removed.
// Every tree it produces must validate.
type sim struct {
	tb      testing.TB
	suite   *ciphersuite.Suite
	tree    *Tree
	groupID []byte
	rng     *rand.Rand
	keys    map[treemath.LeafIndex]*ciphersuite.SigningKey
	serial  uint64
}

func newSim(tb testing.TB, suiteID uint16, seed uint64) *sim {
	s := &sim{
		tb:      tb,
		suite:   mustSuite(tb, suiteID),
		groupID: []byte("sim group"),
		rng:     rand.New(rand.NewPCG(seed, 7)),
		keys:    map[treemath.LeafIndex]*ciphersuite.SigningKey{},
	}
	ln, key := s.leaf(wire.LeafNodeSourceKeyPackage, 0, nil, nil)
	tree, err := New(s.suite, ln)
	if err != nil {
		tb.Fatal(err)
	}
	s.tree = tree
	s.keys[0] = key
	return s
}

// randomBytes returns n bytes from the simulation's generator.
func (s *sim) randomBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(s.rng.Uint32())
	}
	return b
}

// encryptionKey returns a fresh, well-formed encryption key.
func (s *sim) encryptionKey() []byte {
	k, err := s.suite.GenerateKeyPair(&byteReader{s})
	if err != nil {
		s.tb.Fatal(err)
	}
	return k.PublicKey()
}

type byteReader struct{ s *sim }

func (r *byteReader) Read(p []byte) (int, error) {
	copy(p, r.s.randomBytes(len(p)))
	return len(p), nil
}

// leaf returns a signed leaf of the given source for leaf index l (used
// only by the update and commit sources), with signing key key (a new one
// if nil).
func (s *sim) leaf(src wire.LeafNodeSource, l treemath.LeafIndex, key *ciphersuite.SigningKey, parentHash []byte) (*wire.LeafNode, *ciphersuite.SigningKey) {
	if key == nil {
		var err error
		if key, err = s.suite.GenerateSigningKey(&byteReader{s}); err != nil {
			s.tb.Fatal(err)
		}
	}
	s.serial++
	ln := &wire.LeafNode{
		EncryptionKey: s.encryptionKey(),
		SignatureKey:  key.PublicKey(),
		Credential:    wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: binary.BigEndian.AppendUint64(nil, s.serial)},
		Capabilities: wire.Capabilities{
			Versions:     []wire.ProtocolVersion{1},
			CipherSuites: []uint16{uint16(s.suite.ID()), 0x0A0A},
			Extensions:   []wire.ExtensionType{0xff00},
			Credentials:  []wire.CredentialType{wire.CredentialTypeBasic, wire.CredentialTypeX509},
		},
		LeafNodeSource: src,
		Extensions:     []wire.Extension{{ExtensionType: 0xff00, ExtensionData: []byte("x")}},
	}
	switch src {
	case wire.LeafNodeSourceKeyPackage:
		ln.Lifetime = &wire.Lifetime{NotBefore: 1_000_000_000, NotAfter: 3_000_000_000}
	case wire.LeafNodeSourceCommit:
		ln.ParentHash = parentHash
	}
	s.sign(ln, l, key)
	return ln, key
}

func (s *sim) sign(ln *wire.LeafNode, l treemath.LeafIndex, key *ciphersuite.SigningKey) {
	ln.ClearRaw()
	sig, err := s.suite.SignWithLabel(key, "LeafNodeTBS", ln.TBS(s.groupID, uint32(l)))
	if err != nil {
		s.tb.Fatal(err)
	}
	ln.Signature = sig
}

func (s *sim) members() []treemath.LeafIndex {
	var out []treemath.LeafIndex
	for l := range s.tree.Members() {
		out = append(out, l)
	}
	return out
}

func (s *sim) randomMember() treemath.LeafIndex {
	m := s.members()
	return m[s.rng.IntN(len(m))]
}

func (s *sim) add() treemath.LeafIndex {
	ln, key := s.leaf(wire.LeafNodeSourceKeyPackage, 0, nil, nil)
	s.checkLeaf(treemath.LeafIndex(s.tree.LeafCount()), ln, wire.LeafNodeSourceKeyPackage)
	l, err := s.tree.AddLeaf(ln)
	if err != nil {
		s.tb.Fatal(err)
	}
	s.keys[l] = key
	return l
}

func (s *sim) update(l treemath.LeafIndex) {
	ln, _ := s.leaf(wire.LeafNodeSourceUpdate, l, s.keys[l], nil)
	s.checkLeaf(l, ln, wire.LeafNodeSourceUpdate)
	if err := s.tree.UpdateLeaf(l, ln); err != nil {
		s.tb.Fatal(err)
	}
}

func (s *sim) remove(l treemath.LeafIndex) {
	if err := s.tree.RemoveLeaf(l); err != nil {
		s.tb.Fatal(err)
	}
	delete(s.keys, l)
}

// commit merges a full UpdatePath from l (§12.4.2) and installs its new
// commit leaf.
func (s *sim) commit(l treemath.LeafIndex) {
	path, err := s.tree.FilteredDirectPath(l)
	if err != nil {
		s.tb.Fatal(err)
	}
	keys := make([][]byte, len(path))
	for i := range keys {
		keys[i] = s.encryptionKey()
	}
	ph, err := s.tree.MergePath(l, keys)
	if err != nil {
		s.tb.Fatal(err)
	}
	ln, _ := s.leaf(wire.LeafNodeSourceCommit, l, s.keys[l], ph)
	s.checkLeaf(l, ln, wire.LeafNodeSourceCommit)
	if err := s.tree.SetLeaf(l, ln); err != nil {
		s.tb.Fatal(err)
	}
}

// step applies one random operation and names it.
func (s *sim) step() string {
	n := s.tree.MemberCount()
	switch r := s.rng.IntN(10); {
	case r < 4 || n < 2:
		return fmt.Sprintf("add %d", s.add())
	case r < 6:
		l := s.randomMember()
		s.commit(l)
		return fmt.Sprintf("commit %d", l)
	case r < 8:
		l := s.randomMember()
		s.remove(l)
		return fmt.Sprintf("remove %d", l)
	default:
		l := s.randomMember()
		s.update(l)
		return fmt.Sprintf("update %d", l)
	}
}

// checkLeaf applies the checks of a new leaf node (§7.3).
func (s *sim) checkLeaf(l treemath.LeafIndex, ln *wire.LeafNode, src wire.LeafNodeSource) {
	s.tb.Helper()
	opts := &ValidationOptions{GroupID: s.groupID, Source: src, Now: simNow}
	if err := ValidateLeafNode(s.suite, ln, l, opts); err != nil {
		s.tb.Fatalf("new %v leaf: %v", src, err)
	}
	if err := s.tree.CheckNewLeaf(l, ln); err != nil {
		s.tb.Fatalf("new %v leaf: %v", src, err)
	}
}

// simNow is inside the lifetime of the simulation's key packages.
var simNow = time.Unix(2_000_000_000, 0)

func (s *sim) validate() error {
	return s.tree.Validate(&ValidationOptions{GroupID: s.groupID})
}

// resync drops keys of members no longer in the tree.
func (s *sim) resync() {
	for l := range s.keys {
		if s.tree.LeafBytes(l) == nil {
			delete(s.keys, l)
		}
	}
}
