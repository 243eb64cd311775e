package events_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlsengine/mlsengine/events"
	"github.com/mlsengine/mlsengine/natsrv"
)

// TestFactPinnedPartition checks what the worker will rely on for per-group
// order and failover: a partition's consumer with MaxAckPending 1 and the
// pinned-client priority policy delivers to one client at a time, in
// stream order, and moves the pin to another client once the pinned one
// stops pulling (within PinnedTTL).
func TestFactPinnedPartition(t *testing.T) {
	ctx := context.Background()
	srv, err := natsrv.StartEmbedded(ctx, natsrv.EmbeddedOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	s := events.Subjects{}
	connect := func() jetstream.JetStream {
		nc, err := srv.Connect()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
		return js
	}
	js := connect()
	if _, err := js.CreateStream(ctx, s.LogStream("", 1, 1, jetstream.FileStorage)); err != nil {
		t.Fatal(err)
	}
	const ttl = time.Second
	if _, err := js.CreateOrUpdateConsumer(ctx, events.DefaultLogStream, jetstream.ConsumerConfig{
		Durable: "p0", FilterSubject: s.PartitionFilter(0), AckPolicy: jetstream.AckExplicitPolicy,
		MaxAckPending: 1, AckWait: 5 * time.Second,
		PriorityPolicy: jetstream.PriorityPolicyPinned, PriorityGroups: []string{"workers"}, PinnedTTL: ttl,
	}); err != nil {
		t.Fatal(err)
	}
	type got struct {
		worker string
		seq    uint64
		at     time.Time
	}
	var mu sync.Mutex
	var seen []got
	start := func(name string) jetstream.ConsumeContext {
		c, err := connect().Consumer(ctx, events.DefaultLogStream, "p0")
		if err != nil {
			t.Fatal(err)
		}
		cc, err := c.Consume(func(m jetstream.Msg) {
			md, _ := m.Metadata()
			mu.Lock()
			seen = append(seen, got{name, md.Sequence.Stream, time.Now()})
			mu.Unlock()
			m.Ack()
		}, jetstream.PullPriorityGroup("workers"), jetstream.PullExpiry(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return cc
	}
	a := start("a")
	b := start("b")
	defer b.Stop()
	publish := func(n int) {
		for i := range n {
			if _, err := js.Publish(ctx, s.Msg([]byte{byte(i % 7)}), []byte("m")); err != nil {
				t.Fatal(err)
			}
		}
	}
	wait := func(n int) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			k := len(seen)
			mu.Unlock()
			if k >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d messages delivered", k, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	publish(50)
	wait(50)
	mu.Lock()
	first := seen[0].worker
	for i, g := range seen {
		if g.worker != first {
			t.Fatalf("message %d went to %s while %s was pinned", i, g.worker, first)
		}
		if i > 0 && g.seq <= seen[i-1].seq {
			t.Fatalf("out of order: %d after %d", g.seq, seen[i-1].seq)
		}
	}
	mu.Unlock()
	// The pinned worker stops; the other takes over.
	stopped := time.Now()
	gone := a
	if first != "a" {
		gone = b
	}
	gone.Stop()
	<-gone.Closed() // no callback of it runs after this
	publish(20)
	wait(70)
	mu.Lock()
	defer mu.Unlock()
	var took time.Duration
	for _, g := range seen[50:] {
		if g.worker == first {
			t.Fatalf("the stopped worker %s still got message %d", first, g.seq)
		}
		if took == 0 {
			took = g.at.Sub(stopped)
		}
	}
	t.Logf("the other worker took over %v after the pinned one stopped (PinnedTTL %v)", took.Round(time.Millisecond), ttl)
	if first != "a" {
		a.Stop()
	}
}

// TestFactNakBlocksPartition: with MaxAckPending 1, a message given back
// with NakWithDelay keeps its place: the next message is not delivered
// before it. So a message of a future epoch cannot wait for its commit,
// which comes after it in the same partition, by being given back; it has
// to be set aside.
func TestFactNakBlocksPartition(t *testing.T) {
	ctx := context.Background()
	srv, err := natsrv.StartEmbedded(ctx, natsrv.EmbeddedOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, _ := srv.Connect()
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "Q", Subjects: []string{"q.>"}}); err != nil {
		t.Fatal(err)
	}
	c, err := js.CreateOrUpdateConsumer(ctx, "Q", jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1})
	if err != nil {
		t.Fatal(err)
	}
	js.Publish(ctx, "q.a", []byte("first"))
	js.Publish(ctx, "q.b", []byte("second"))
	m, err := c.Next(jetstream.FetchMaxWait(time.Second))
	if err != nil || string(m.Data()) != "first" {
		t.Fatalf("first delivery: %v", err)
	}
	m.NakWithDelay(2 * time.Second)
	start := time.Now()
	m, err = c.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data()) != "first" || time.Since(start) < 1500*time.Millisecond {
		t.Fatalf("after the nak, %q came %v later: the nak'ed message did not keep its place", m.Data(), time.Since(start))
	}
	t.Logf("the nak'ed message came back after %v, before the next one", time.Since(start).Round(time.Millisecond))
}
