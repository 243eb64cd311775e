package engine_test

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/storage/memory"
)

// Two clients, each with its own store: Alice creates a group, adds Bob
// from his key package, and they exchange a message. Every step is stored
// as it happens; LoadGroup picks a group up again, here or in another
// process sharing the backend.
func Example() {
	ctx := context.Background()
	suite, _ := ciphersuite.Lookup(engine.DefaultSuite)
	aliceKey, _ := suite.GenerateSigningKey(rand.Reader)
	bobKey, _ := suite.GenerateSigningKey(rand.Reader)
	basic := func(name string) wire.Credential {
		return wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: []byte(name)}
	}
	aliceStore, bobStore := memory.New(), memory.New()
	cfg := &engine.Config{}
	cfg.RatchetTreeExtension = true

	alice, err := engine.NewGroup(ctx, aliceStore, aliceKey, cfg, basic("alice"))
	if err != nil {
		panic(err)
	}
	kp, _ := engine.NewKeyPackage(ctx, bobStore, bobKey, cfg, basic("bob"), nil)
	res, _ := alice.AddMembers(ctx, []*wire.KeyPackage{kp})
	_ = alice.MergePendingCommit(ctx) // once the delivery service accepted res.Commit
	bob, err := engine.JoinGroup(ctx, bobStore, res.Welcome, cfg, nil)
	if err != nil {
		panic(err)
	}

	msg, _ := alice.Protect(ctx, []byte("hello, bob"), nil)
	again, _ := engine.LoadGroup(ctx, bobStore, bob.GroupID(), cfg) // as a restarted process would
	rm, err := again.Process(ctx, msg)
	if err != nil {
		panic(err)
	}
	fmt.Printf("epoch %d, %d members: %s\n", again.Epoch(), len(again.Members()), rm.ApplicationData)
	// Output: epoch 1, 2 members: hello, bob
}
