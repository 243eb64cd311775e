package treekem

import (
	"errors"
	"slices"
	"testing"

	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// negativeFixture is a group of 8 members, leaf 2 having just committed.
// Receiver 6 decrypts at the root, receiver 3 at node 3... see the tests.
type negativeFixture struct {
	g      *testGroup
	sender treemath.LeafIndex
	enc    []byte // the encoded UpdatePath
}

func newNegativeFixture(t *testing.T) *negativeFixture {
	t.Helper()
	g := buildGroup(t, groupSpec{suite: 1, members: 8})
	res, err := createUpdatePath(g.tree(t), &CreateParams{Sender: 2, GroupID: g.groupID, SigningKey: g.sig[2], GroupContext: g.groupContext()})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := wire.Marshal(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	return &negativeFixture{g: g, sender: 2, enc: enc}
}

// path returns a fresh decoded copy of the UpdatePath.
func (f *negativeFixture) path(t *testing.T) *wire.UpdatePath {
	t.Helper()
	p, err := wire.Unmarshal[wire.UpdatePath](f.enc)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *negativeFixture) sign(t *testing.T, p *wire.UpdatePath, parentHash []byte) {
	t.Helper()
	p.LeafNode.ClearRaw()
	p.LeafNode.ParentHash = parentHash
	sig, err := f.g.suite.SignWithLabel(f.g.sig[f.sender], "LeafNodeTBS", p.LeafNode.TBS(f.g.groupID, uint32(f.sender)))
	if err != nil {
		t.Fatal(err)
	}
	p.LeafNode.Signature = sig
}

// expectReject processes p as receiver r and expects an error matching
// want, with r's private state unchanged.
func (f *negativeFixture) expectReject(t *testing.T, r treemath.LeafIndex, p *wire.UpdatePath, want error) {
	t.Helper()
	st := f.g.state(t, r)
	expectRejectState(t, f.g, st, f.sender, p, nil, want)
}

func expectRejectState(t *testing.T, g *testGroup, st *PrivateState, sender treemath.LeafIndex, p *wire.UpdatePath, excluded []treemath.LeafIndex, want error) {
	t.Helper()
	before, nodes, leafKey := st.String(), st.Nodes(), st.LeafKey()
	out, err := processUpdatePath(g.tree(t), st, &ProcessParams{Sender: sender, GroupID: g.groupID, Path: p, Excluded: excluded, GroupContext: g.groupContext()})
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want %v", err, want)
	}
	if out != nil {
		t.Fatal("result returned with an error")
	}
	if st.String() != before || st.LeafKey() != leafKey || !slices.Equal(st.Nodes(), nodes) {
		t.Fatal("private state changed by a rejected UpdatePath")
	}
}

func TestProcessRejects(t *testing.T) {
	f := newNegativeFixture(t)
	// Sender 2's filtered direct path is [5 3 7], copath [6 1 11]; receiver
	// 3 decrypts node 5, receiver 0 node 3, receiver 6 node 7.
	t.Run("tampered ciphertext", func(t *testing.T) {
		for _, r := range []treemath.LeafIndex{3, 0, 6} {
			p := f.path(t)
			for i := range p.Nodes {
				ct := p.Nodes[i].EncryptedPathSecret[0].Ciphertext
				ct[len(ct)-1] ^= 1
			}
			f.expectReject(t, r, p, ErrDecryptPathSecret)
		}
	})
	t.Run("tampered kem output", func(t *testing.T) {
		p := f.path(t)
		p.Nodes[2].EncryptedPathSecret[0].KEMOutput[0] ^= 1
		f.expectReject(t, 6, p, ErrDecryptPathSecret)
	})
	t.Run("ciphertext swapped between nodes", func(t *testing.T) {
		p := f.path(t)
		p.Nodes[0].EncryptedPathSecret, p.Nodes[1].EncryptedPathSecret = p.Nodes[1].EncryptedPathSecret, p.Nodes[0].EncryptedPathSecret
		// Receiver 3 finds at its slot a ciphertext for another key.
		f.expectReject(t, 3, p, ErrDecryptPathSecret)
	})
	t.Run("node missing", func(t *testing.T) {
		p := f.path(t)
		p.Nodes = p.Nodes[:2]
		f.expectReject(t, 6, p, ErrPathLength)
	})
	t.Run("node added", func(t *testing.T) {
		p := f.path(t)
		p.Nodes = append(p.Nodes, p.Nodes[0])
		f.expectReject(t, 6, p, ErrPathLength)
	})
	t.Run("extra ciphertext", func(t *testing.T) {
		p := f.path(t)
		p.Nodes[1].EncryptedPathSecret = append(p.Nodes[1].EncryptedPathSecret, p.Nodes[1].EncryptedPathSecret[0])
		// Every receiver rejects, including those that do not decrypt
		// node 1.
		f.expectReject(t, 6, p, ErrCiphertextCount)
		f.expectReject(t, 3, p, ErrCiphertextCount)
	})
	t.Run("missing ciphertext", func(t *testing.T) {
		p := f.path(t)
		p.Nodes[2].EncryptedPathSecret = nil
		f.expectReject(t, 0, p, ErrCiphertextCount)
	})
	t.Run("public key swapped, parent hash not updated", func(t *testing.T) {
		p := f.path(t)
		p.Nodes[1].EncryptionKey, p.Nodes[2].EncryptionKey = p.Nodes[2].EncryptionKey, p.Nodes[1].EncryptionKey
		f.expectReject(t, 6, p, ErrParentHashMismatch)
	})
	t.Run("public key replaced by a malicious committer", func(t *testing.T) {
		// The committer advertises for the root a key other than the one
		// its path secret derives, with a matching parent hash, signature
		// and encryptions.
		c := &creator{t: f.g.tree(t), p: &CreateParams{Sender: f.sender, GroupID: f.g.groupID, SigningKey: f.g.sig[f.sender], GroupContext: f.g.groupContext()}}
		for _, step := range []func() error{c.checkInputs, c.derivePathSecrets, c.deriveKeys} {
			if err := step(); err != nil {
				t.Fatal(err)
			}
		}
		c.nodeKeys[2] = f.g.priv[3]
		for _, step := range []func() error{c.mergePath, c.signLeaf, c.groupContext, c.encryptPathSecrets} {
			if err := step(); err != nil {
				t.Fatal(err)
			}
		}
		p := c.result().Path
		for _, r := range []treemath.LeafIndex{0, 3, 6} {
			f.expectReject(t, r, p, ErrPublicKeyMismatch)
		}
	})
	t.Run("bad parent hash, signed", func(t *testing.T) {
		p := f.path(t)
		ph := append([]byte(nil), p.LeafNode.ParentHash...)
		ph[0] ^= 1
		f.sign(t, p, ph)
		f.expectReject(t, 6, p, ErrParentHashMismatch)
	})
	t.Run("bad parent hash, unsigned", func(t *testing.T) {
		// As if changed on the wire: the signature covers the received
		// bytes.
		p := f.path(t)
		p.LeafNode.ParentHash[0] ^= 1
		p.LeafNode.ClearRaw()
		f.expectReject(t, 6, p, ErrLeafNode)
	})
	t.Run("bad signature", func(t *testing.T) {
		p := f.path(t)
		p.LeafNode.Signature[0] ^= 1
		f.expectReject(t, 6, p, ErrLeafNode)
	})
	t.Run("wrong source", func(t *testing.T) {
		p := f.path(t)
		p.LeafNode.LeafNodeSource = wire.LeafNodeSourceUpdate
		f.expectReject(t, 6, p, ErrLeafNode)
	})
	t.Run("malformed public key", func(t *testing.T) {
		p := f.path(t)
		p.Nodes[0].EncryptionKey = p.Nodes[0].EncryptionKey[:5]
		f.expectReject(t, 6, p, ErrInvalidPublicKey)
	})
	t.Run("short path secret", func(t *testing.T) {
		// A malicious committer encrypts a 16-byte path secret.
		p := f.path(t)
		g := f.g
		st := g.state(t, 6)
		tr := g.tree(t)
		ln := p.LeafNode
		if err := tr.SetLeaf(f.sender, &ln); err != nil {
			t.Fatal(err)
		}
		keys := make([][]byte, len(p.Nodes))
		for i := range p.Nodes {
			keys[i] = p.Nodes[i].EncryptionKey
		}
		if _, err := tr.MergePath(f.sender, keys); err != nil {
			t.Fatal(err)
		}
		gcb, _ := g.groupContext()(tr.TreeHash())
		kem, ct, err := g.suite.EncryptWithLabel(g.tree(t).EncryptionKey(11), "UpdatePathNode", gcb, make([]byte, 16))
		if err != nil {
			t.Fatal(err)
		}
		p.Nodes[2].EncryptedPathSecret[0] = wire.HPKECiphertext{KEMOutput: kem, Ciphertext: ct}
		expectRejectState(t, g, st, f.sender, p, nil, ErrDecryptPathSecret)
	})
	t.Run("wrong group context", func(t *testing.T) {
		p := f.path(t)
		st := f.g.state(t, 6)
		_, err := processUpdatePath(f.g.tree(t), st, &ProcessParams{Sender: f.sender, GroupID: f.g.groupID, Path: p,
			GroupContext: func([]byte) ([]byte, error) { return []byte("another context"), nil }})
		if !errors.Is(err, ErrDecryptPathSecret) {
			t.Fatal(err)
		}
	})
	t.Run("no key", func(t *testing.T) {
		// Receiver 6 without its key for node 11 cannot decrypt at the
		// root, whose copath resolution is node 11.
		full := f.g.state(t, 6)
		st, err := NewPrivateState(full.Suite(), 6, full.LeafKey(), nil)
		if err != nil {
			t.Fatal(err)
		}
		expectRejectState(t, f.g, st, f.sender, f.path(t), nil, ErrNoDecryptionKey)
	})
	t.Run("receiver excluded", func(t *testing.T) {
		expectRejectState(t, f.g, f.g.state(t, 6), f.sender, f.path(t), []treemath.LeafIndex{6}, ErrNoDecryptionKey)
	})
	t.Run("receiver is sender", func(t *testing.T) {
		expectRejectState(t, f.g, f.g.state(t, 2), f.sender, f.path(t), nil, ErrInvalidArgument)
	})
	t.Run("wrong group id", func(t *testing.T) {
		st := f.g.state(t, 6)
		_, err := processUpdatePath(f.g.tree(t), st, &ProcessParams{Sender: f.sender, GroupID: []byte("other"), Path: f.path(t), GroupContext: f.g.groupContext()})
		if !errors.Is(err, ErrLeafNode) {
			t.Fatal(err)
		}
	})
}

func TestPrivateStateRejects(t *testing.T) {
	g := buildGroup(t, groupSpec{suite: 1, members: 8})
	lk := g.priv[leafNode(2)]
	for name, nodes := range map[string][]NodeKey{
		"leaf node":    {{Node: 4, Key: lk}},
		"off the path": {{Node: 1, Key: lk}},
		"duplicate":    {{Node: 5, Key: g.priv[5]}, {Node: 5, Key: g.priv[5]}},
		"nil key":      {{Node: 5}},
		"not ancestor": {{Node: 1 << 20, Key: lk}},
	} {
		if _, err := NewPrivateState(g.suite, 2, lk, nodes); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Consistency with the tree.
	tr := g.tree(t)
	good := g.state(t, 2)
	if err := good.check(tr); err != nil {
		t.Fatal(err)
	}
	wrong, _ := NewPrivateState(g.suite, 2, lk, []NodeKey{{Node: 5, Key: g.priv[3]}})
	if err := wrong.check(tr); !errors.Is(err, ErrInconsistentState) {
		t.Errorf("wrong key: %v", err)
	}
	wrongLeaf, _ := NewPrivateState(g.suite, 2, g.priv[leafNode(3)], nil)
	if err := wrongLeaf.check(tr); !errors.Is(err, ErrInconsistentState) {
		t.Errorf("wrong leaf key: %v", err)
	}
	g.blankLeafAndPath(3) // blanks 5, 3 and 7
	if err := good.check(g.tree(t)); !errors.Is(err, ErrInconsistentState) {
		t.Errorf("blank node: %v", err)
	}
	// From path secrets.
	ps := secret.Copy(seedFor("ps", 0))
	st, err := PrivateStateFromPathSecrets(g.suite, 2, lk, []NodePathSecret{{Node: 7, PathSecret: ps}, {Node: 5, PathSecret: ps}})
	if err != nil {
		t.Fatal(err)
	}
	if n := st.Nodes(); len(n) != 2 || n[0].Node != 5 || n[1].Node != 7 {
		t.Fatalf("nodes %v", n)
	}
	st.Clear()
	if st.LeafKey() != nil || len(st.Nodes()) != 0 {
		t.Fatal("Clear left keys")
	}
}
