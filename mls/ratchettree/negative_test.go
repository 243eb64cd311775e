package ratchettree

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// wireOf decodes a tree encoding into its array form, for tampering.
func wireOf(t *testing.T, tree *Tree) wire.RatchetTree {
	t.Helper()
	var rt wire.RatchetTree
	if err := codec.Unmarshal(tree.Bytes(), &rt); err != nil {
		t.Fatal(err)
	}
	return rt
}

// expectInvalid checks that err matches ErrInvalidTree and each of kinds.
func expectInvalid(t *testing.T, err error, kinds ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted, want %v", kinds)
	}
	for _, k := range append([]error{ErrInvalidTree}, kinds...) {
		if !errors.Is(err, k) {
			t.Fatalf("error %q does not match %q", err, k)
		}
	}
}

// unmergedVector returns the tree-validation case whose tree has the most
// unmerged leaves, for suite 1.
func unmergedVector(t *testing.T) (*Tree, []byte) {
	best, most := -1, 0
	cases := loadVectors[validationCase](t, "tree-validation.json")
	for i, tc := range cases {
		if tc.CipherSuite != 1 {
			continue
		}
		tree, err := Decode(suite1(t), tc.Tree)
		if err != nil {
			t.Fatal(err)
		}
		u := 0
		for x := range tree.Width() {
			if p := tree.ParentNode(treemath.NodeIndex(x)); p != nil {
				u += len(p.UnmergedLeaves)
			}
		}
		if u > most {
			best, most = i, u
		}
	}
	if best < 0 {
		t.Fatal("no vector with unmerged leaves")
	}
	tree, _ := Decode(suite1(t), cases[best].Tree)
	return tree, cases[best].GroupID
}

func TestStructureRejected(t *testing.T) {
	suite := suite1(t)
	g := benchTree(t, 8, false)
	good, err := Decode(suite, g.data)
	if err != nil {
		t.Fatal(err)
	}
	rt := wireOf(t, good)

	t.Run("empty", func(t *testing.T) {
		_, err := FromWire(suite, nil)
		expectInvalid(t, err)
		_, err = Decode(suite, []byte{0})
		expectInvalid(t, err)
	})
	t.Run("trailing blank", func(t *testing.T) {
		_, err := FromWire(suite, append(slices.Clone(rt), nil, nil))
		expectInvalid(t, err)
		enc := good.Bytes()
		// Append one blank node: grow the vector length by one.
		body := append(slices.Clone(enc[2:]), 0)
		_, err = Decode(suite, append(appendVarint(nil, len(body)), body...))
		expectInvalid(t, err)
	})
	t.Run("parent at even index", func(t *testing.T) {
		bad := slices.Clone(rt)
		bad[2] = rt[1]
		_, err := FromWire(suite, bad)
		expectInvalid(t, err)
		// On the wire: the node type byte of leaf 1 says parent.
		enc := slices.Clone(good.Bytes())
		i := bytes.Index(enc, rt[2].LeafNode.Bytes())
		enc[i-1] = byte(wire.NodeTypeParent)
		_, err = Decode(suite, enc)
		expectInvalid(t, err, codec.ErrMalformed)
	})
	t.Run("leaf at odd index", func(t *testing.T) {
		bad := slices.Clone(rt)
		bad[1] = rt[0]
		_, err := FromWire(suite, bad)
		expectInvalid(t, err)
	})
	t.Run("node type without body", func(t *testing.T) {
		bad := slices.Clone(rt)
		bad[0] = &wire.Node{NodeType: wire.NodeTypeLeaf}
		_, err := FromWire(suite, bad)
		expectInvalid(t, err)
	})
	t.Run("truncated encoding", func(t *testing.T) {
		enc := good.Bytes()
		for _, n := range []int{1, 2, len(enc) / 2, len(enc) - 1} {
			if _, err := Decode(suite, enc[:n]); err == nil {
				t.Errorf("prefix of %d bytes accepted", n)
			} else {
				expectInvalid(t, err, codec.ErrMalformed)
			}
		}
		if _, err := Decode(suite, append(slices.Clone(enc), 0)); err == nil {
			t.Error("trailing byte accepted")
		}
	})
	t.Run("nil suite", func(t *testing.T) {
		if _, err := FromWire(nil, rt); err == nil {
			t.Error("nil suite accepted")
		}
	})
}

func TestUnmergedLeavesRejected(t *testing.T) {
	tree, _ := unmergedVector(t)
	suite := tree.Suite()
	rt := wireOf(t, tree)
	var x int // a parent below the root with unmerged leaves
	for i, n := range rt {
		if n != nil && n.ParentNode != nil && len(n.ParentNode.UnmergedLeaves) > 0 && uint32(i) != rootOf(uint32(tree.LeafCount())) {
			x = i
		}
	}
	if x == 0 {
		t.Fatal("no unmerged leaves")
	}
	p := rt[x].ParentNode
	withUnmerged := func(u []uint32) wire.RatchetTree {
		bad := slices.Clone(rt)
		bad[x] = &wire.Node{NodeType: wire.NodeTypeParent, ParentNode: &wire.ParentNode{
			EncryptionKey: p.EncryptionKey, ParentHash: p.ParentHash, UnmergedLeaves: u,
		}}
		return bad
	}
	lo, hi := leafSpan(uint32(x))
	var outside uint32 // a non-blank leaf not below x
	for l := range treemath.LeafIndex(tree.LeafCount()) {
		if (uint32(l) < lo || uint32(l) > hi) && tree.LeafBytes(l) != nil {
			outside = uint32(l)
			break
		}
	}
	var blank uint32 = noNode // a blank leaf below x
	for l := lo; l <= hi; l++ {
		if tree.LeafBytes(treemath.LeafIndex(l)) == nil {
			blank = l
		}
	}
	cases := map[string][]uint32{
		"not below the node": append(slices.Clone(p.UnmergedLeaves), outside),
		"beyond the tree":    append(slices.Clone(p.UnmergedLeaves), uint32(tree.LeafCount())),
		"repeated":           append(slices.Clone(p.UnmergedLeaves), p.UnmergedLeaves[len(p.UnmergedLeaves)-1]),
		"unsorted":           append([]uint32{hi}, p.UnmergedLeaves...),
	}
	if blank != noNode {
		cases["blank leaf"] = append(slices.Clone(p.UnmergedLeaves), blank)
	}
	for name, u := range cases {
		t.Run(name, func(t *testing.T) {
			slices.Sort(u) // except "unsorted", which must stay unsorted
			if name == "unsorted" {
				u = append([]uint32{hi}, p.UnmergedLeaves...)
			}
			_, err := FromWire(suite, withUnmerged(u))
			expectInvalid(t, err, ErrUnmergedLeaf)
			if name == "beyond the tree" && !errors.Is(err, ErrIndexOutOfRange) {
				t.Errorf("%v does not match ErrIndexOutOfRange", err)
			}
		})
	}
	t.Run("missing below", func(t *testing.T) {
		// A leaf unmerged at x must also be unmerged at every non-blank
		// node between it and x: list one at x only, dropping it from
		// the node below.
		for i, n := range rt {
			if n == nil || n.ParentNode == nil || i == x || len(n.ParentNode.UnmergedLeaves) == 0 {
				continue
			}
			lo2, hi2 := leafSpan(uint32(i))
			if lo2 < lo || hi2 > hi {
				continue // not below x
			}
			q := n.ParentNode
			bad := slices.Clone(rt)
			bad[i] = &wire.Node{NodeType: wire.NodeTypeParent, ParentNode: &wire.ParentNode{
				EncryptionKey: q.EncryptionKey, ParentHash: q.ParentHash, UnmergedLeaves: q.UnmergedLeaves[1:],
			}}
			tr, err := FromWire(suite, bad)
			if err != nil {
				t.Fatal(err)
			}
			expectInvalid(t, tr.Validate(nil), ErrUnmergedLeaf)
			return
		}
		t.Skip("no nested unmerged leaves in the vectors")
	})
}

func TestParentHashRejected(t *testing.T) {
	g := benchTree(t, 8, false)
	good, _ := Decode(suite1(t), g.data)
	rt := wireOf(t, good)
	opts := &ValidationOptions{GroupID: g.groupID}
	for _, x := range []int{1, 3, 7, 11} {
		for _, field := range []string{"parent_hash", "encryption_key"} {
			p := rt[x].ParentNode
			np := &wire.ParentNode{EncryptionKey: p.EncryptionKey, ParentHash: p.ParentHash}
			switch field {
			case "parent_hash":
				np.ParentHash = slices.Clone(p.ParentHash)
				np.ParentHash = append(np.ParentHash, 0) // also catches the root's empty one
			case "encryption_key":
				np.EncryptionKey = slices.Clone(p.EncryptionKey)
				np.EncryptionKey[0] ^= 1
			}
			bad := slices.Clone(rt)
			bad[x] = &wire.Node{NodeType: wire.NodeTypeParent, ParentNode: np}
			tree, err := FromWire(suite1(t), bad)
			if err != nil {
				t.Fatal(err)
			}
			expectInvalid(t, tree.VerifyParentHashes(), ErrParentHashMismatch)
			expectInvalid(t, tree.Validate(opts), ErrParentHashMismatch)
		}
	}
	t.Run("blank link", func(t *testing.T) {
		// Blanking a parent breaks the chain of the node above it.
		bad := slices.Clone(rt)
		bad[5] = nil
		tree, err := FromWire(suite1(t), bad)
		if err != nil {
			t.Fatal(err)
		}
		expectInvalid(t, tree.Validate(opts), ErrParentHashMismatch)
	})
}

func TestDuplicateKeysRejected(t *testing.T) {
	s := newSim(t, 1, 11)
	for range 6 {
		s.add()
	}
	s.commit(2)
	if err := s.validate(); err != nil {
		t.Fatal(err)
	}
	// Leaf 2 committed last: its own hash is in no parent hash, so
	// changing it leaves the parent hashes valid.
	t.Run("leaf encryption key", func(t *testing.T) {
		tree := s.tree.Clone()
		ln := tree.Leaf(2)
		ln.EncryptionKey = tree.EncryptionKey(0)
		s.sign(ln, 2, s.keys[2])
		if err := tree.CheckNewLeaf(2, ln); !errors.Is(err, ErrDuplicateEncryptionKey) {
			t.Errorf("CheckNewLeaf: %v", err)
		}
		if err := tree.SetLeaf(2, ln); err != nil {
			t.Fatal(err)
		}
		expectInvalid(t, tree.Validate(&ValidationOptions{GroupID: s.groupID}), ErrDuplicateEncryptionKey)
	})
	t.Run("parent encryption key", func(t *testing.T) {
		// A committer that reuses a leaf's key for a parent node; its
		// parent hashes are otherwise right.
		tree := s.tree.Clone()
		path, _ := tree.FilteredDirectPath(5)
		keys := make([][]byte, len(path))
		for i := range keys {
			keys[i] = s.encryptionKey()
		}
		keys[0] = tree.EncryptionKey(0)
		ph, err := tree.MergePath(5, keys)
		if err != nil {
			t.Fatal(err)
		}
		ln, _ := s.leaf(wire.LeafNodeSourceCommit, 5, s.keys[5], ph)
		if err := tree.SetLeaf(5, ln); err != nil {
			t.Fatal(err)
		}
		if err := tree.VerifyParentHashes(); err != nil {
			t.Fatal(err)
		}
		expectInvalid(t, tree.Validate(&ValidationOptions{GroupID: s.groupID}), ErrDuplicateEncryptionKey)
		if x, ok := tree.FindEncryptionKey(keys[0]); !ok || x != 0 {
			t.Errorf("FindEncryptionKey = %d, %v", x, ok)
		}
	})
	t.Run("signature key", func(t *testing.T) {
		tree := s.tree.Clone()
		ln := tree.Leaf(2)
		ln.EncryptionKey = s.encryptionKey()
		ln.SignatureKey = s.keys[1].PublicKey()
		s.sign(ln, 2, s.keys[1])
		if err := tree.CheckNewLeaf(2, ln); !errors.Is(err, ErrDuplicateSignatureKey) {
			t.Errorf("CheckNewLeaf: %v", err)
		}
		if err := tree.SetLeaf(2, ln); err != nil {
			t.Fatal(err)
		}
		expectInvalid(t, tree.Validate(&ValidationOptions{GroupID: s.groupID}), ErrDuplicateSignatureKey)
		if l, ok := tree.FindSignatureKey(ln.SignatureKey); !ok || l != 1 {
			t.Errorf("FindSignatureKey = %d, %v", l, ok)
		}
	})
	t.Run("update keeps its encryption key", func(t *testing.T) {
		ln := s.tree.Leaf(3)
		ln.LeafNodeSource = wire.LeafNodeSourceUpdate
		ln.Lifetime = nil
		s.sign(ln, 3, s.keys[3])
		if err := s.tree.CheckNewLeaf(3, ln); !errors.Is(err, ErrDuplicateEncryptionKey) {
			t.Errorf("CheckNewLeaf: %v", err)
		}
	})
}

func TestLeafSignatureRejected(t *testing.T) {
	g := benchTree(t, 8, false)
	good, _ := Decode(suite1(t), g.data)
	rt := wireOf(t, good)
	// The last leaf lies on no original sibling of any parent hash, so only
	// its signature breaks.
	ln := rt[14].LeafNode
	ln.Signature = slices.Clone(ln.Signature)
	ln.Signature[5] ^= 1
	ln.ClearRaw()
	tree, err := FromWire(suite1(t), rt)
	if err != nil {
		t.Fatal(err)
	}
	err = tree.Validate(&ValidationOptions{GroupID: g.groupID})
	expectInvalid(t, err, ErrBadLeafSignature)
	// Parallelism does not change which error is reported.
	for _, p := range []int{1, 2, 3, 8} {
		if err2 := tree.Validate(&ValidationOptions{GroupID: g.groupID, Parallelism: p}); err2 == nil || err2.Error() != err.Error() {
			t.Errorf("parallelism %d: %v, want %v", p, err2, err)
		}
	}
}

func TestTreeHashMismatch(t *testing.T) {
	g := benchTree(t, 5, false)
	tree, _ := Decode(suite1(t), g.data)
	h := tree.TreeHash()
	if err := tree.CheckTreeHash(h); err != nil {
		t.Fatal(err)
	}
	h[0] ^= 1
	expectInvalid(t, tree.CheckTreeHash(h), ErrTreeHashMismatch)
	expectInvalid(t, tree.CheckTreeHash(nil), ErrTreeHashMismatch)
}

func TestIndexOutOfRange(t *testing.T) {
	g := benchTree(t, 5, false)
	tree, _ := Decode(suite1(t), g.data)
	n := treemath.LeafIndex(tree.LeafCount())
	ln := tree.Leaf(0)
	checks := map[string]error{
		"RemoveLeaf": tree.RemoveLeaf(n),
		"UpdateLeaf": tree.UpdateLeaf(n, ln),
		"SetLeaf":    tree.SetLeaf(n+100, ln),
	}
	_, checks["MergePath"] = tree.MergePath(n, nil)
	_, checks["FilteredDirectPath"] = tree.FilteredDirectPath(n)
	_, checks["FilteredCopath"] = tree.FilteredCopath(1 << 31)
	for name, err := range checks {
		if !errors.Is(err, ErrIndexOutOfRange) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if tree.Leaf(n) != nil || tree.LeafBytes(1<<31) != nil || tree.ParentNode(1<<30) != nil ||
		tree.EncryptionKey(treemath.NodeIndex(tree.Width())) != nil || !tree.IsBlank(1<<31) ||
		tree.NodeHash(treemath.NodeIndex(tree.Width())) != nil || len(tree.Resolution(1<<31)) != 0 ||
		tree.ParentHash(1<<31, 0) != nil || tree.SignatureKey(n) != nil {
		t.Error("an accessor returned something beyond the tree")
	}
	// Blank leaves.
	if err := tree.RemoveLeaf(5); !errors.Is(err, ErrBlankLeaf) {
		t.Errorf("RemoveLeaf of a blank leaf: %v", err)
	}
	if err := tree.UpdateLeaf(6, ln); !errors.Is(err, ErrBlankLeaf) {
		t.Errorf("UpdateLeaf of a blank leaf: %v", err)
	}
	if _, err := tree.MergePath(0, nil); !errors.Is(err, ErrPathLength) {
		t.Errorf("MergePath with no keys: %v", err)
	}
	if !bytes.Equal(tree.Bytes(), g.data) {
		t.Error("a failed operation changed the tree")
	}
}

func TestLeafNodeChecks(t *testing.T) {
	s := newSim(t, 1, 21)
	base := func() *wire.LeafNode {
		ln, _ := s.leaf(wire.LeafNodeSourceKeyPackage, 0, s.keys[0], nil)
		return ln
	}
	ok := &ValidationOptions{Now: simNow}
	if err := ValidateLeafNode(s.suite, base(), 0, ok); err != nil {
		t.Fatal(err)
	}
	resign := func(ln *wire.LeafNode) *wire.LeafNode { s.sign(ln, 0, s.keys[0]); return ln }
	cases := []struct {
		name string
		ln   *wire.LeafNode
		opts *ValidationOptions
		want error
	}{
		{"expired", base(), &ValidationOptions{Now: time.Unix(3_000_000_001, 0)}, ErrLifetime},
		{"not yet valid", base(), &ValidationOptions{Now: time.Unix(999_999_999, 0)}, ErrLifetime},
		{"too long", base(), &ValidationOptions{MaxLifetime: 24 * time.Hour}, ErrLifetime},
		{"wrong source", base(), &ValidationOptions{Source: wire.LeafNodeSourceUpdate}, ErrLeafNodeSource},
		{"credential rejected", base(), &ValidationOptions{ValidateCredential: func(*wire.Credential, []byte) error {
			return errors.New("unknown identity")
		}}, ErrCredential},
		{"required extension", base(), &ValidationOptions{RequiredCapabilities: &wire.RequiredCapabilities{
			ExtensionTypes: []wire.ExtensionType{0xff01}}}, ErrCapabilities},
		{"required proposal", base(), &ValidationOptions{RequiredCapabilities: &wire.RequiredCapabilities{
			ProposalTypes: []wire.ProposalType{0xff01}}}, ErrCapabilities},
		{"required credential", base(), &ValidationOptions{GroupContextExtensions: []wire.Extension{
			wire.RequiredCapabilitiesExtension(&wire.RequiredCapabilities{CredentialTypes: []wire.CredentialType{0xff01}})}}, ErrCapabilities},
		{"group context extension", base(), &ValidationOptions{GroupContextExtensions: []wire.Extension{
			{ExtensionType: 0xff02, ExtensionData: []byte{}}}}, ErrCapabilities},
		{"unlisted own extension", func() *wire.LeafNode {
			ln := base()
			ln.Capabilities.Extensions = nil
			return resign(ln)
		}(), ok, ErrCapabilities},
		{"unlisted credential type", func() *wire.LeafNode {
			ln := base()
			ln.Capabilities.Credentials = []wire.CredentialType{wire.CredentialTypeX509}
			return resign(ln)
		}(), ok, ErrCapabilities},
		// §7.3 does not ask a leaf to list the group's suite or version, and
		// deployed implementations send leaves that do not: accepted.
		{"unlisted suite", func() *wire.LeafNode {
			ln := base()
			ln.Capabilities.CipherSuites = []uint16{2}
			return resign(ln)
		}(), ok, nil},
		{"unlisted version", func() *wire.LeafNode {
			ln := base()
			ln.Capabilities.Versions = []wire.ProtocolVersion{2}
			return resign(ln)
		}(), ok, nil},
		{"bad encryption key", func() *wire.LeafNode {
			ln := base()
			ln.EncryptionKey = ln.EncryptionKey[:31]
			return resign(ln)
		}(), ok, ErrInvalidKey},
		{"bad signature", func() *wire.LeafNode {
			ln := base()
			ln.Signature[0] ^= 1
			return ln
		}(), ok, ErrBadLeafSignature},
		{"signature over another leaf index", func() *wire.LeafNode {
			ln, _ := s.leaf(wire.LeafNodeSourceUpdate, 1, s.keys[0], nil)
			return ln
		}(), ok, ErrBadLeafSignature},
	}
	for _, c := range cases {
		if err := ValidateLeafNode(s.suite, c.ln, 0, c.opts); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// Defaults need not (and must not) be listed: application_id in the
	// leaf, or required, is fine.
	ln := base()
	ln.Extensions = append(ln.Extensions, wire.ApplicationIDExtension([]byte("app")))
	resign(ln)
	if err := ValidateLeafNode(s.suite, ln, 0, &ValidationOptions{RequiredCapabilities: &wire.RequiredCapabilities{
		ExtensionTypes: []wire.ExtensionType{wire.ExtensionTypeApplicationID}, ProposalTypes: []wire.ProposalType{wire.ProposalTypeAdd}}}); err != nil {
		t.Error(err)
	}
}

func TestCredentialTypeCompatibility(t *testing.T) {
	s := newSim(t, 1, 31)
	s.add()
	// A member that supports basic only, while x509 is ... not in use:
	// fine.
	ln, _ := s.leaf(wire.LeafNodeSourceKeyPackage, 0, nil, nil)
	ln.Capabilities.Credentials = []wire.CredentialType{wire.CredentialTypeBasic}
	key, _ := s.suite.GenerateSigningKey(&byteReader{s})
	ln.SignatureKey = key.PublicKey()
	s.sign(ln, 0, key)
	if err := s.tree.CheckNewLeaf(treemath.LeafIndex(s.tree.LeafCount()), ln); err != nil {
		t.Fatal(err)
	}
	l, _ := s.tree.AddLeaf(ln)
	s.keys[l] = key
	// Now an x509 member cannot join: the basic-only member does not
	// support its type.
	x, xkey := s.leaf(wire.LeafNodeSourceKeyPackage, 0, nil, nil)
	x.Credential = wire.Credential{CredentialType: wire.CredentialTypeX509, Certificates: []wire.Certificate{{CertData: []byte{1}}}}
	s.sign(x, 0, xkey)
	if err := s.tree.CheckNewLeaf(treemath.LeafIndex(s.tree.LeafCount()), x); !errors.Is(err, ErrCapabilities) {
		t.Fatalf("CheckNewLeaf: %v", err)
	}
	if _, err := s.tree.AddLeaf(x); err != nil {
		t.Fatal(err)
	}
	expectInvalid(t, s.validate(), ErrCapabilities)
}
