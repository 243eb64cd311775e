package treekem

import (
	"testing"

	"github.com/mlsengine/mlsengine/internal/vectors"
	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/ratchettree"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// The official TreeKEM vectors (testdata/vectors/treekem.json, format in
// mls-implementations test-vectors.md, section "TreeKEM"). The conformance
// package's TestOfficialVectors runs every check the format lists; the
// tests here set the vectors up for what it does not check, and for
// FuzzProcessUpdatePath.

type hexBytes = vectors.Hex

type treeKEMVector struct {
	CipherSuite             uint16   `json:"cipher_suite"`
	GroupID                 hexBytes `json:"group_id"`
	Epoch                   uint64   `json:"epoch"`
	ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`
	RatchetTree             hexBytes `json:"ratchet_tree"`
	LeavesPrivate           []struct {
		Index          uint32   `json:"index"`
		EncryptionPriv hexBytes `json:"encryption_priv"`
		SignaturePriv  hexBytes `json:"signature_priv"`
		PathSecrets    []struct {
			Node       uint32   `json:"node"`
			PathSecret hexBytes `json:"path_secret"`
		} `json:"path_secrets"`
	} `json:"leaves_private"`
	UpdatePaths []struct {
		Sender     uint32   `json:"sender"`
		UpdatePath hexBytes `json:"update_path"`
	} `json:"update_paths"`
}

const vectorFile = "../../testdata/vectors/treekem.json"

func loadVectors(tb testing.TB) []treeKEMVector {
	tb.Helper()
	vs, err := vectors.Load[treeKEMVector](vectorFile)
	if err != nil {
		tb.Fatal(err)
	}
	return vs
}

// vectorSetup is one vector, decoded: the suite, the tree and the private
// state of every leaf in leaves_private.
type vectorSetup struct {
	v       *treeKEMVector
	suite   *ciphersuite.Suite
	tree    *ratchettree.Tree
	states  map[treemath.LeafIndex]*PrivateState
	signers map[treemath.LeafIndex]*ciphersuite.SigningKey
}

func setupVector(tb testing.TB, v *treeKEMVector) *vectorSetup {
	tb.Helper()
	suite, err := ciphersuite.Lookup(ciphersuite.ID(v.CipherSuite))
	if err != nil {
		tb.Fatal(err)
	}
	rt, err := wire.Unmarshal[wire.RatchetTree](v.RatchetTree)
	if err != nil {
		tb.Fatal(err)
	}
	tree, err := ratchettree.FromWire(suite, *rt)
	if err != nil {
		tb.Fatal(err)
	}
	s := &vectorSetup{v: v, suite: suite, tree: tree, states: map[treemath.LeafIndex]*PrivateState{}, signers: map[treemath.LeafIndex]*ciphersuite.SigningKey{}}
	for _, lp := range v.LeavesPrivate {
		leafKey, err := suite.ParseHPKEPrivateKey(lp.EncryptionPriv)
		if err != nil {
			tb.Fatal(err)
		}
		var secrets []NodePathSecret
		for _, ps := range lp.PathSecrets {
			secrets = append(secrets, NodePathSecret{Node: treemath.NodeIndex(ps.Node), PathSecret: secret.Copy(ps.PathSecret)})
		}
		st, err := PrivateStateFromPathSecrets(suite, treemath.LeafIndex(lp.Index), leafKey, secrets)
		if err != nil {
			tb.Fatalf("leaf %d: %v", lp.Index, err)
		}
		// "Verify that the resulting private state leaf_private[i] is
		// consistent with the ratchet_tree."
		if err := st.Check(tree); err != nil {
			tb.Fatalf("leaf %d: %v", lp.Index, err)
		}
		s.states[st.Leaf()] = st
		if s.signers[st.Leaf()], err = suite.ParseSigningKey(lp.SignaturePriv); err != nil {
			tb.Fatal(err)
		}
	}
	return s
}

// groupContext is the vector's GroupContext with the given tree hash: the
// format's note says the tree hash is that of the tree after merging the
// UpdatePath.
func (s *vectorSetup) groupContext(th []byte) ([]byte, error) {
	gc := &wire.GroupContext{
		Version: wire.ProtocolVersionMLS10, CipherSuite: s.v.CipherSuite, GroupID: s.v.GroupID,
		Epoch: s.v.Epoch, TreeHash: th, ConfirmedTranscriptHash: s.v.ConfirmedTranscriptHash,
		Extensions: []wire.Extension{},
	}
	return gc.Bytes(), nil
}

// receivers lists the non-blank leaves other than sender, each of which
// must have a private state in the vector.
func (s *vectorSetup) receivers(tb testing.TB, sender treemath.LeafIndex) []treemath.LeafIndex {
	tb.Helper()
	var rs []treemath.LeafIndex
	for l := range treemath.LeafIndex(s.tree.LeafCount()) {
		if l == sender || s.tree.Leaf(l) == nil {
			continue
		}
		if s.states[l] == nil {
			tb.Fatalf("no leaves_private entry for non-blank leaf %d", l)
		}
		rs = append(rs, l)
	}
	return rs
}

// TestVectors processes every UpdatePath of treekem.json at every other
// member, creates a fresh one from the same sender and processes that too,
// and checks what the conformance verifier (which compares the path
// secrets, commit secrets and tree hashes with the vector's) does not: every
// resulting private state is consistent with its tree, the committer's tree
// is parent-hash valid, every receiver of the fresh path ends with the
// committer's tree, and the vectors cover all seven suites.
func TestVectors(t *testing.T) {
	vs := loadVectors(t)
	perSuite := map[uint16]int{}
	for i := range vs {
		v := &vs[i]
		perSuite[v.CipherSuite]++
		s := setupVector(t, v)
		for _, up := range v.UpdatePaths {
			sender := treemath.LeafIndex(up.Sender)
			path, err := wire.Unmarshal[wire.UpdatePath](up.UpdatePath)
			if err != nil {
				t.Fatalf("case %d sender %d: %v", i, sender, err)
			}
			for _, r := range s.receivers(t, sender) {
				tr := s.tree.Clone()
				out, err := ProcessUpdatePath(tr, s.states[r], ProcessParams{Sender: sender, GroupID: v.GroupID, Path: path, GroupContext: s.groupContext})
				if err != nil {
					t.Fatalf("case %d sender %d receiver %d: %v", i, sender, r, err)
				}
				if err := out.State.Check(tr); err != nil {
					t.Fatalf("case %d sender %d receiver %d: new state: %v", i, sender, r, err)
				}
			}

			st := s.tree.Clone()
			res, err := CreateUpdatePath(st, CreateParams{Sender: sender, GroupID: v.GroupID, SigningKey: s.signers[sender], GroupContext: s.groupContext})
			if err != nil {
				t.Fatalf("case %d sender %d: create: %v", i, sender, err)
			}
			if err := st.VerifyParentHashes(); err != nil {
				t.Fatalf("case %d sender %d: created tree not parent-hash valid: %v", i, sender, err)
			}
			if err := res.State.Check(st); err != nil {
				t.Fatalf("case %d sender %d: committer state: %v", i, sender, err)
			}
			enc, err := codec.Marshal(res.Path)
			if err != nil {
				t.Fatal(err)
			}
			newPath, err := wire.Unmarshal[wire.UpdatePath](enc)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range s.receivers(t, sender) {
				tr := s.tree.Clone()
				out, err := ProcessUpdatePath(tr, s.states[r], ProcessParams{Sender: sender, GroupID: v.GroupID, Path: newPath, GroupContext: s.groupContext})
				if err != nil {
					t.Fatalf("case %d sender %d receiver %d: new path: %v", i, sender, r, err)
				}
				if string(tr.TreeHash()) != string(st.TreeHash()) {
					t.Fatalf("case %d sender %d receiver %d: tree after the new path differs", i, sender, r)
				}
				if err := out.State.Check(tr); err != nil {
					t.Fatalf("case %d sender %d receiver %d: new path: new state: %v", i, sender, r, err)
				}
			}
		}
	}
	if len(perSuite) != 7 {
		t.Fatalf("vectors cover %d suites, want 7", len(perSuite))
	}
	t.Logf("%d cases over %d suites", len(vs), len(perSuite))
}
