package group_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/wire"
)

func TestBasicLifecycle(t *testing.T) {
	for _, suite := range ciphersuite.All() {
		t.Run(suite.String(), func(t *testing.T) {
			for _, tree := range []bool{true, false} {
				for _, enc := range []bool{true, false} {
					basicLifecycle(t, suite, tree, enc)
				}
			}
		})
	}
}

func basicLifecycle(t *testing.T, suite ciphersuite.ID, withTree, encrypt bool) {
	alice := newClient(t, suite, "alice", 1)
	bob := newClient(t, suite, "bob", 2)
	carol := newClient(t, suite, "carol", 3)
	for _, c := range []*client{alice, bob, carol} {
		c.cfg.RatchetTreeExtension = withTree
		c.cfg.EncryptHandshake = encrypt
	}
	var err error
	alice.g, err = group.Create(alice.cfg, suite, alice.id, []byte("group"), nil)
	if err != nil {
		t.Fatal(err)
	}
	bkp, ckp := bob.keyPackage(t, suite), carol.keyPackage(t, suite)
	if _, _, err := alice.g.ProposeAdd(bkp.KeyPackage); err != nil {
		t.Fatal(err)
	}
	res, err := alice.g.Commit(&group.CommitOptions{Proposals: []*wire.Proposal{addProposal(ckp)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.g.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	var opts *group.JoinOptions
	if !withTree {
		opts = &group.JoinOptions{RatchetTree: alice.g.RatchetTreeBytes()}
	}
	if bob.g, err = group.Join(bob.cfg, res.Welcome.Welcome, bkp, opts); err != nil {
		t.Fatal(err)
	}
	if carol.g, err = group.Join(carol.cfg, res.Welcome.Welcome, ckp, opts); err != nil {
		t.Fatal(err)
	}
	mustEqualAuthenticators(t, alice, bob, carol)

	// Application messages.
	m, err := bob.g.Protect([]byte("hello"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{alice, carol} {
		rm, err := c.g.Process(m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rm.ApplicationData, []byte("hello")) || !bytes.Equal(rm.AuthenticatedData, []byte("aad")) {
			t.Fatal("wrong data")
		}
		if _, err := c.g.Process(m); !errors.Is(err, group.ErrReplay) {
			t.Fatalf("replay: %v", err)
		}
	}

	// Carol updates, Bob commits.
	up, _, err := carol.g.ProposeUpdate(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{alice, bob} {
		if _, err := c.g.Process(up); err != nil {
			t.Fatal(err)
		}
	}
	res, err = bob.g.Commit(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.g.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{alice, carol} {
		rm, err := c.g.Process(res.Commit)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if err := c.g.MergeStagedCommit(rm.Commit); err != nil {
			t.Fatal(err)
		}
	}
	mustEqualAuthenticators(t, alice, bob, carol)

	// Alice removes Bob.
	res, err = alice.g.Commit(&group.CommitOptions{Proposals: []*wire.Proposal{removeProposal(bob.g.OwnLeafIndex())}})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.g.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{bob, carol} {
		rm, err := c.g.Process(res.Commit)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if err := c.g.MergeStagedCommit(rm.Commit); err != nil {
			t.Fatal(err)
		}
	}
	mustEqualAuthenticators(t, alice, carol)
	if bob.g.Status() != group.StatusRemoved {
		t.Fatal("bob still active")
	}
	if alice.g.MemberCount() != 2 {
		t.Fatal("member count")
	}
}
