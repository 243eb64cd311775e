package engine_test

import (
	"context"
	"crypto/rand"
	"testing"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/storage/memory"
)

// TestLeafWithoutGroupSuite: in every suite, a member whose leaf does not
// list the group's cipher suite (or protocol version) in its capabilities,
// as other implementations' leaves do, is added, and a later joiner
// accepts the tree that holds it (RFC 9420 §7.3 does not ask for either).
func TestLeafWithoutGroupSuite(t *testing.T) {
	ctx := context.Background()
	for _, id := range ciphersuite.All() {
		t.Run(id.String(), func(t *testing.T) {
			suite, err := ciphersuite.Lookup(id)
			if err != nil {
				t.Fatal(err)
			}
			type client struct {
				store *memory.Backend
				key   *ciphersuite.SigningKey
				cfg   *engine.Config
				cred  wire.Credential
			}
			newClient := func(name string, caps *wire.Capabilities) *client {
				k, err := suite.GenerateSigningKey(rand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				cfg := &engine.Config{Suite: id, Capabilities: caps}
				cfg.RatchetTreeExtension = true
				return &client{memory.New(), k, cfg, wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: []byte(name)}}
			}
			foreign := group.DefaultCapabilities(id)
			foreign.CipherSuites = nil // lists no suite, not even the group's
			foreign.Versions = nil
			alice, bob, carol := newClient("alice", nil), newClient("bob", foreign), newClient("carol", nil)
			a, err := engine.NewGroup(ctx, alice.store, alice.key, alice.cfg, alice.cred)
			if err != nil {
				t.Fatal(err)
			}
			kpb, err := engine.NewKeyPackage(ctx, bob.store, bob.key, bob.cfg, bob.cred, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := a.AddMembers(ctx, []*wire.KeyPackage{kpb})
			if err != nil {
				t.Fatalf("adding a member whose leaf lists no suite: %v", err)
			}
			if err := a.MergePendingCommit(ctx); err != nil {
				t.Fatal(err)
			}
			b, err := engine.JoinGroup(ctx, bob.store, res.Welcome, bob.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			// Carol's join validates the whole tree, bob's leaf in it.
			kpc, err := engine.NewKeyPackage(ctx, carol.store, carol.key, carol.cfg, carol.cred, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err = a.AddMembers(ctx, []*wire.KeyPackage{kpc})
			if err != nil {
				t.Fatal(err)
			}
			if err := a.MergePendingCommit(ctx); err != nil {
				t.Fatal(err)
			}
			rm, err := b.Process(ctx, res.Commit)
			if err != nil {
				t.Fatalf("bob processes the commit: %v", err)
			}
			if err := b.MergeStagedCommit(ctx, rm.Commit); err != nil {
				t.Fatal(err)
			}
			c, err := engine.JoinGroup(ctx, carol.store, res.Welcome, carol.cfg, nil)
			if err != nil {
				t.Fatalf("carol joins a tree with such a leaf: %v", err)
			}
			msg, err := b.Protect(ctx, []byte("from bob"), nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range []*engine.Group{a, c} {
				if rm, err := g.Process(ctx, msg); err != nil || string(rm.ApplicationData) != "from bob" {
					t.Fatalf("reading bob: %v", err)
				}
			}
			if !a.EpochAuthenticator().Equal(c.EpochAuthenticator()) || !b.EpochAuthenticator().Equal(c.EpochAuthenticator()) {
				t.Fatal("the members disagree")
			}
		})
	}
}
