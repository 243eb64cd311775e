package worker_test

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlsengine/mlsengine/events"
	"github.com/mlsengine/mlsengine/jetstore"
	"github.com/mlsengine/mlsengine/worker"
)

// TestBatchFailures: storage fails every few units while a member reads a
// stream of messages in batches; each failure gives the batch back, and
// the inputs are applied again, in order, from the stored state. Every
// message is read once (the events stream drops the republished events by
// id), in the order it was sent, and the members agree afterwards.
func TestBatchFailures(t *testing.T) {
	var failing atomic.Bool
	var steps atomic.Int64
	var failed atomic.Int64
	h := startWith(t, func(c *worker.Config) {
		c.Batch = 16
		// A failure here stands for a crash of the writer, whose unit
		// others finish or roll back after Grace.
		c.Store.Grace = 20 * time.Millisecond
		c.Store.Hooks = &jetstore.Hooks{Step: func(step string) error {
			if failing.Load() && (step == "commit" || step == "intent") && steps.Add(1)%11 == 0 {
				failed.Add(1)
				return fmt.Errorf("injected failure at %s", step)
			}
			return nil
		}}
	})
	gid := []byte("batches")
	h.newGroup(gid, "a", "b")

	const n = 120
	failing.Store(true)
	for i := range n {
		c := &events.Command{V: events.Version, ID: fmt.Sprintf("send-%d", i), Kind: events.CmdSend, Member: "a", Group: gid, Data: []byte(fmt.Sprintf("m%03d", i))}
		h.publish(c, "")
	}
	next := 0
	deadline := time.After(60 * time.Second)
	for next < n {
		select {
		case e := <-h.evs:
			if e.Member == "b" && e.Kind != events.EvApplication {
				t.Logf("b: %s %s %s seq %d", e.Kind, e.Code, e.Detail, e.Seq)
			}
			if e.Kind != events.EvApplication || e.Member != "b" {
				continue
			}
			if want := fmt.Sprintf("m%03d", next); string(e.Data) != want {
				t.Fatalf("b read %q, want %q: out of order or twice", e.Data, want)
			}
			next++
		case <-deadline:
			t.Fatalf("b read %d of %d messages", next, n)
		}
	}
	failing.Store(false)
	if failed.Load() == 0 {
		t.Fatal("no failure was injected")
	}
	h.ok(&events.Command{Kind: events.CmdSelfUpdate, Member: "b", Group: gid})
	h.wait(func(e *events.Event) bool { return e.Kind == events.EvEpoch && e.Member == "a" && e.Epoch == 2 })
	h.ok(&events.Command{Kind: events.CmdSend, Member: "b", Group: gid, Data: []byte("after")})
	if e := h.wait(func(e *events.Event) bool { return e.Kind == events.EvApplication && e.Member == "a" }); string(e.Data) != "after" {
		t.Fatalf("a read %q", e.Data)
	}
	t.Logf("%d messages read in order, once, through %d injected storage failures", n, failed.Load())
}

// TestStepBack: storage fails for longer than a worker may hold a batch
// without pulling (PinnedTTL/4): the worker steps back from the partition
// and takes it up again, and every message is still read once, in order.
func TestStepBack(t *testing.T) {
	var failing atomic.Bool
	reg := prometheus.NewRegistry()
	h := startWith(t, func(c *worker.Config) {
		c.Metrics = reg
		c.Store.Grace = 20 * time.Millisecond
		c.Store.Hooks = &jetstore.Hooks{Step: func(step string) error {
			if failing.Load() && (step == "commit" || step == "intent") {
				return errors.New("injected outage")
			}
			return nil
		}}
	})
	gid := []byte("outage")
	h.newGroup(gid, "a", "b")
	const n = 40
	failing.Store(true)
	time.AfterFunc(1500*time.Millisecond, func() { failing.Store(false) })
	for i := range n {
		h.publish(&events.Command{V: events.Version, ID: fmt.Sprintf("s-%d", i), Kind: events.CmdSend, Member: "a", Group: gid, Data: []byte(fmt.Sprintf("m%03d", i))}, "")
	}
	next := 0
	deadline := time.After(60 * time.Second)
	for next < n {
		select {
		case e := <-h.evs:
			if e.Kind != events.EvApplication || e.Member != "b" {
				continue
			}
			if want := fmt.Sprintf("m%03d", next); string(e.Data) != want {
				t.Fatalf("b read %q, want %q", e.Data, want)
			}
			next++
		case <-deadline:
			t.Fatalf("b read %d of %d messages", next, n)
		}
	}
	if got := metricValue(t, reg, "mls_worker_step_backs_total"); got == 0 {
		t.Fatal("the worker never stepped back")
	}
}
