package natsrv_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlsengine/mlsengine/natsrv"
)

// An embedded server with JetStream in a temporary directory, requiring a
// token; a client connects by URL as it would to a remote server, creates a
// stream and publishes to it.
func ExampleStartEmbedded() {
	ctx := context.Background()
	check := func(err error) {
		if err != nil {
			log.Fatal(err)
		}
	}

	dir, err := os.MkdirTemp("", "natsrv-example")
	check(err)
	defer os.RemoveAll(dir)
	srv, err := natsrv.StartEmbedded(ctx, natsrv.EmbeddedOptions{Dir: dir, Token: "s3cret"})
	check(err)
	defer srv.Shutdown()

	// srv.Connect(nats.Token("s3cret")) does the same.
	nc, err := natsrv.Connect(ctx, natsrv.ConnectOptions{URL: srv.ClientURL(), Token: "s3cret"})
	check(err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	check(err)
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}})
	check(err)
	ack, err := js.Publish(ctx, "events.hello", []byte("hi"))
	check(err)
	fmt.Printf("stored in %s as message %d\n", ack.Stream, ack.Sequence)
	// Output: stored in EVENTS as message 1
}
