package natstest_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlsengine/mlsengine/internal/natstest"
)

func connectJS(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// A message acknowledged before SIGKILL is in the store after a restart:
// the server writes it to the file before acknowledging, so only a machine
// crash (not a process crash) can lose it without sync_always.
func TestProcessKeepsMessagesAcrossKill(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	bin := natstest.BuildServer(t)
	p := natstest.StartProcess(t, bin, t.TempDir())

	js := connectJS(t, p.URL())
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "S", Subjects: []string{"s.>"}, Storage: jetstream.FileStorage,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "s.one", []byte("survives")); err != nil {
		t.Fatal(err)
	}

	url := p.URL()
	p.Kill()
	p.Restart(t)
	if p.URL() != url {
		t.Fatalf("URL after Restart = %q, want %q", p.URL(), url)
	}

	js = connectJS(t, p.URL())
	s, err := js.Stream(ctx, "S")
	if err != nil {
		t.Fatalf("stream after kill: %v", err)
	}
	m, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatalf("message after kill: %v", err)
	}
	if string(m.Data) != "survives" {
		t.Fatalf("message = %q, want %q", m.Data, "survives")
	}
}

// TestCluster starts a three-node cluster and writes to a replicated stream.
// It takes several seconds, so it runs only with NATSTEST_CLUSTER=1.
func TestCluster(t *testing.T) {
	if os.Getenv("NATSTEST_CLUSTER") == "" {
		t.Skip("set NATSTEST_CLUSTER=1 to run the cluster test")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	nodes := natstest.StartCluster(t, natstest.BuildServer(t), 3)

	js := connectJS(t, nodes[0].URL())
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "R", Subjects: []string{"r.>"}, Storage: jetstream.FileStorage, Replicas: 3,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "r.one", []byte("replicated")); err != nil {
		t.Fatal(err)
	}

	// With one node down the other two still form a quorum.
	nodes[0].Kill()
	js = connectJS(t, nodes[1].URL())
	var m *jetstream.RawStreamMsg
	for {
		s, err := js.Stream(ctx, "R")
		if err == nil {
			if m, err = s.GetMsg(ctx, 1); err == nil {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("reading from the surviving nodes: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if string(m.Data) != "replicated" {
		t.Fatalf("message = %q, want %q", m.Data, "replicated")
	}
	nodes[0].Restart(t)
}
