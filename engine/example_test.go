package engine_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/storage/memory"
)

// Two clients, each with its own store: Alice creates a group, adds Bob
// from his key package, and they exchange a message. Every step is stored
// as it happens; LoadGroup picks a group up again, here or in another
// process sharing the backend. This is the README's "Using the engine".
func Example() {
	ctx := context.Background()
	check := func(err error) {
		if err != nil {
			log.Fatal(err)
		}
	}

	// A signature key and a credential per client; keep the key, it is the member's identity.
	suite, err := ciphersuite.Lookup(engine.DefaultSuite)
	check(err)
	aliceKey, err := suite.GenerateSigningKey(rand.Reader)
	check(err)
	bobKey, err := suite.GenerateSigningKey(rand.Reader)
	check(err)
	aliceCred := wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: []byte("alice")}
	bobCred := wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: []byte("bob")}

	// Welcomes carry the ratchet tree; without it, pass alice.RatchetTreeBytes() in engine.JoinOptions.
	cfg := &engine.Config{}
	cfg.RatchetTreeExtension = true
	// Or your own storage.Backend, checked with storagetest.Run.
	store, bobStore := memory.New(), memory.New()

	alice, err := engine.NewGroup(ctx, store, aliceKey, cfg, aliceCred)
	check(err)
	kp, err := engine.NewKeyPackage(ctx, bobStore, bobKey, cfg, bobCred, nil)
	check(err)
	res, err := alice.AddMembers(ctx, []*wire.KeyPackage{kp}) // send res.Commit to the group, res.Welcome to Bob
	check(err)
	check(alice.MergePendingCommit(ctx)) // once the delivery service accepted res.Commit
	bob, err := engine.JoinGroup(ctx, bobStore, res.Welcome, cfg, nil)
	check(err)

	msg, err := alice.Protect(ctx, []byte("hi"), nil)
	check(err)
	again, err := engine.LoadGroup(ctx, bobStore, bob.GroupID(), cfg) // as a restarted process would; errors.Is(err, engine.ErrGroupNotFound)
	check(err)
	rm, err := again.Process(ctx, msg)
	check(err)
	fmt.Printf("%s (epoch %d, %d members)\n", rm.ApplicationData, again.Epoch(), len(again.Members()))
	// Output: hi (epoch 1, 2 members)
}
