package jetstore_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log"
	"os"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/jetstore"
	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/natsrv"
)

// A member's groups on JetStream: an embedded server, a Store for member
// "alice", a group created and used through it, and the group loaded again
// through a second Store on a new connection, as another worker process
// would. This is the README's "On NATS JetStream".
func Example() {
	ctx := context.Background()
	check := func(err error) {
		if err != nil {
			log.Fatal(err)
		}
	}

	dir, err := os.MkdirTemp("", "mlsengine-example")
	check(err)
	defer os.RemoveAll(dir)
	// Or natsrv.Connect(ctx, natsrv.ConnectOptions{URL: ..., CredsFile: ...}) for a real server.
	srv, err := natsrv.StartEmbedded(ctx, natsrv.EmbeddedOptions{Dir: dir})
	check(err)
	defer srv.Shutdown()
	// In production: jetstore.LoadRootKeyFile("/etc/mlsengine/root.key") (mode 0600).
	root, err := jetstore.ParseRootKey([]byte(jetstore.GenerateRootKey()))
	check(err)

	nc, err := srv.Connect()
	check(err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	check(err)
	store, err := jetstore.Open(ctx, js, jetstore.Options{Member: "alice", RootKey: root})
	check(err)
	defer store.Close()

	suite, err := ciphersuite.Lookup(engine.DefaultSuite)
	check(err)
	key, err := suite.GenerateSigningKey(rand.Reader)
	check(err)
	cred := wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: []byte("alice")}
	g, err := engine.NewGroup(ctx, store, key, &engine.Config{}, cred)
	check(err)
	_, err = g.Protect(ctx, []byte("hi"), nil)
	check(err)

	// Another process: a new connection and Store, the same member and root key.
	nc2, err := srv.Connect()
	check(err)
	defer nc2.Close()
	js2, err := jetstream.New(nc2)
	check(err)
	store2, err := jetstore.Open(ctx, js2, jetstore.Options{Member: "alice", RootKey: root})
	check(err)
	defer store2.Close()
	again, err := engine.LoadGroup(ctx, store2, g.GroupID())
	check(err)
	fmt.Printf("epoch %d, %d member\n", again.Epoch(), len(again.Members()))
	// Output: epoch 0, 1 member
}
