package worker

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlsengine/mlsengine/natsrv"
)

// The watched view follows writes of other workers, and the registry's own
// writes take effect in it at once and are not undone by the watch
// delivering them late.
func TestRegistryWatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := natsrv.StartEmbedded(ctx, natsrv.EmbeddedOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	mine, err := openRegistry(ctx, js, "", 1, jetstream.FileStorage)
	if err != nil {
		t.Fatal(err)
	}
	other, err := OpenRegistry(ctx, js, "")
	if err != nil {
		t.Fatal(err)
	}
	g := []byte("g")
	if err := other.Join(ctx, g, "before"); err != nil {
		t.Fatal(err)
	}
	if err := mine.watch(ctx); err != nil {
		t.Fatal(err)
	}
	eventually := func(want ...string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			mine.mu.Lock()
			live := mine.groups != nil
			mine.mu.Unlock()
			got, err := mine.GroupMembers(ctx, g)
			if err != nil {
				t.Fatal(err)
			}
			if live && slices.Equal(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("members %v (watch live: %v), want %v", got, live, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	eventually("before")
	if err := other.Join(ctx, g, "x"); err != nil {
		t.Fatal(err)
	}
	eventually("before", "x")
	if err := other.Leave(ctx, g, "before"); err != nil {
		t.Fatal(err)
	}
	eventually("x")
	// Own writes, back to back: the view is right at once and stays so.
	for range 20 {
		if err := mine.Join(ctx, g, "y"); err != nil {
			t.Fatal(err)
		}
		if got, _ := mine.GroupMembers(ctx, g); !slices.Contains(got, "y") {
			t.Fatalf("after joining: %v", got)
		}
		if err := mine.Leave(ctx, g, "y"); err != nil {
			t.Fatal(err)
		}
		if got, _ := mine.GroupMembers(ctx, g); slices.Contains(got, "y") {
			t.Fatalf("after leaving: %v", got)
		}
	}
	eventually("x")
	// A stale update (the watch delivering an old write late) changes
	// nothing.
	mine.mu.Lock()
	mine.update("x67", "y", true, 1)
	mine.mu.Unlock()
	eventually("x")
	// Other writers' changes still arrive after all of the above.
	if err := other.Join(ctx, g, "z"); err != nil {
		t.Fatal(err)
	}
	eventually("x", "z")
}
