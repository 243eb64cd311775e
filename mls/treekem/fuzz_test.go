package treekem

import (
	"errors"
	"testing"

	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// fuzzErrors are the errors ProcessUpdatePath may return for bad input.
var fuzzErrors = []error{
	ErrInvalidArgument, ErrPathLength, ErrCiphertextCount, ErrInvalidPublicKey, ErrLeafNode,
	ErrParentHashMismatch, ErrNoDecryptionKey, ErrDecryptPathSecret, ErrPublicKeyMismatch,
}

// FuzzProcessUpdatePath feeds arbitrary UpdatePath bytes, from an arbitrary
// sender to an arbitrary receiver, to ProcessUpdatePath over the tree of a
// suite 0x0001 vector with 8 members. It is seeded with the vector's
// UpdatePaths and fresh ones from every member. No input may panic; every
// error must be one of the package's; an accepted path must yield a commit
// secret of KDF.Nh bytes and a private state consistent with the new tree,
// and leave the receiver's old state alone.
func FuzzProcessUpdatePath(f *testing.F) {
	vs := loadVectors(f)
	var s *vectorSetup
	for i := range vs {
		if vs[i].CipherSuite == 1 && len(vs[i].LeavesPrivate) == 8 {
			s = setupVector(f, &vs[i])
			break
		}
	}
	if s == nil {
		f.Fatal("no suite 1 vector with 8 members")
	}
	seeds := 0
	for _, up := range s.v.UpdatePaths {
		for _, r := range s.receivers(f, treemath.LeafIndex(up.Sender)) {
			f.Add(uint8(up.Sender), uint8(r), []byte(up.UpdatePath))
			seeds++
		}
	}
	for _, sender := range s.receivers(f, 8) { // every member
		res, err := CreateUpdatePath(s.tree.Clone(), CreateParams{Sender: sender, GroupID: s.v.GroupID, SigningKey: s.signers[sender], GroupContext: s.groupContext})
		if err != nil {
			f.Fatal(err)
		}
		enc, err := wire.Marshal(res.Path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(sender), uint8((sender+5)%8), enc)
		seeds++
	}
	if seeds == 0 {
		f.Fatal("no seeds")
	}
	f.Fuzz(func(t *testing.T, sender, receiver uint8, b []byte) {
		path, err := wire.Unmarshal[wire.UpdatePath](b)
		if err != nil {
			return
		}
		st := s.states[treemath.LeafIndex(receiver%8)]
		if st == nil {
			return
		}
		before := st.String()
		tr := s.tree.Clone()
		out, err := ProcessUpdatePath(tr, st, ProcessParams{Sender: treemath.LeafIndex(sender % 16), GroupID: s.v.GroupID, Path: path, GroupContext: s.groupContext})
		if st.String() != before {
			t.Fatal("receiver state modified")
		}
		if err != nil {
			for _, want := range fuzzErrors {
				if errors.Is(err, want) {
					return
				}
			}
			t.Fatalf("unexpected error %v", err)
		}
		if out.CommitSecret.Len() != s.suite.HashLen() {
			t.Fatalf("commit secret of %d bytes", out.CommitSecret.Len())
		}
		if err := out.State.Check(tr); err != nil {
			t.Fatalf("accepted path leaves an inconsistent state: %v", err)
		}
	})
}
