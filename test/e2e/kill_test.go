package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlsengine/mlsengine/events"
	"github.com/mlsengine/mlsengine/jetstore"
)

// TestKillWorker: three workers share a nats-server process; one is killed
// with SIGKILL in the middle of a load of application messages and commits
// in several groups. Every message is delivered exactly once to every other
// member, the others take over the dead worker's partitions, every group's
// members agree, and no key material of dead epochs is left.
func TestKillWorker(t *testing.T) {
	sends, groupsN := 1200, 6
	if testing.Short() {
		sends = 300
	}
	const partitions = 8
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Worker 0 starts alone and takes every partition; the two others
	// start once the groups exist and stand by, so that killing worker 0
	// makes them take over.
	f := newFleet(t, ctx, 1, partitions)
	js, c := f.js, f.c
	do := func(cmd *events.Command) *events.Result { t.Helper(); return f.do(ctx, cmd) }
	// Groups of three hosted members each.
	type grp struct {
		id      []byte
		members []string
	}
	var groups []grp
	for g := range groupsN {
		gr := grp{id: []byte(fmt.Sprintf("load-%d", g))}
		for m := range 3 {
			name := fmt.Sprintf("g%dm%d", g, m)
			do(&events.Command{Kind: events.CmdCreateMember, Member: name})
			gr.members = append(gr.members, name)
		}
		do(&events.Command{Kind: events.CmdCreateGroup, Member: gr.members[0], Group: gr.id})
		var kps [][]byte
		for _, m := range gr.members[1:] {
			kps = append(kps, do(&events.Command{Kind: events.CmdKeyPackages, Member: m}).KeyPackages...)
		}
		do(&events.Command{Kind: events.CmdAdd, Member: gr.members[0], Group: gr.id, KeyPackages: kps})
		groups = append(groups, gr)
	}
	f.start()
	f.start()
	// Count every application event.
	type key struct{ member, data string }
	var mu sync.Mutex
	got := map[key]int{}
	rej, stopRej := c.Subscribe(func(e *events.Event) bool { return e.Kind == events.EvRejected }, 1<<16)
	defer stopRej()
	go func() {
		for e := range rej {
			t.Logf("rejected for %s in %s at %d: %s %s", e.Member, e.Group, e.Seq, e.Code, e.Detail)
		}
	}()
	evs, stop := c.Subscribe(func(e *events.Event) bool { return e.Kind == events.EvApplication }, 1<<16)
	defer stop()
	go func() {
		for e := range evs {
			mu.Lock()
			got[key{e.Member, string(e.Data)}]++
			mu.Unlock()
		}
	}()
	// Joins settle before the load.
	time.Sleep(2 * time.Second)
	pins := func() map[int]string {
		out := map[int]string{}
		for p := range partitions {
			cons, err := js.Consumer(ctx, events.DefaultLogStream, fmt.Sprintf("mls-p%d", p))
			if err != nil {
				t.Fatal(err)
			}
			ci, err := cons.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, pg := range ci.PriorityGroups {
				out[p] = pg.PinnedClientID
			}
		}
		return out
	}
	// Each group is driven by its own client loop, one command at a time
	// (as a member's application would), the groups in parallel; one
	// worker is killed a third of the way through.
	var want []key
	var wantMu sync.Mutex
	var killedAt time.Time
	var before map[int]string
	var sent atomic.Int64
	var killOnce sync.Once
	var failed atomic.Int64
	var wg sync.WaitGroup
	var resumeMu sync.Mutex
	resumed := map[int]time.Duration{} // group -> time from the kill to its first command done after it
	for gi, gr := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(gi), 2))
			for i := range sends / len(groups) {
				from := gr.members[rng.IntN(len(gr.members))]
				cmd := &events.Command{Kind: events.CmdSend, Member: from, Group: gr.id}
				data := fmt.Sprintf("%s message %d", gr.id, i)
				if i%40 == 39 {
					cmd.Kind = events.CmdSelfUpdate
				} else {
					cmd.Data = []byte(data)
				}
				issued := time.Now()
				r, err := c.Do(ctx, cmd)
				if err != nil {
					t.Error(err)
					return
				}
				resumeMu.Lock()
				if !killedAt.IsZero() && issued.After(killedAt) {
					if _, ok := resumed[gi]; !ok {
						resumed[gi] = time.Since(killedAt)
					}
				}
				resumeMu.Unlock()
				if !r.OK {
					failed.Add(1)
					t.Logf("%s %s: %s %s", cmd.Kind, from, r.Code, r.Error)
					continue
				}
				if cmd.Kind == events.CmdSend {
					wantMu.Lock()
					for _, m := range gr.members {
						if m != from {
							want = append(want, key{m, data})
						}
					}
					wantMu.Unlock()
				}
				if sent.Add(1) == int64(sends/3) {
					killOnce.Do(func() {
						before = pins()
						resumeMu.Lock()
						killedAt = time.Now()
						resumeMu.Unlock()
						f.kill(0)
					})
				}
			}
		}()
	}
	wg.Wait()
	// Every message arrives once to every other member.
	deadline := time.Now().Add(time.Minute)
	for {
		mu.Lock()
		missing := 0
		for _, k := range want {
			if got[k] == 0 {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			mu.Lock()
			n := 0
			for _, k := range want {
				if got[k] == 0 && n < 5 {
					t.Logf("missing: %s got %q", k.member, k.data)
					n++
				}
			}
			mu.Unlock()
			for p := range partitions {
				cons, _ := js.Consumer(ctx, events.DefaultLogStream, fmt.Sprintf("mls-p%d", p))
				ci, _ := cons.Info(ctx)
				t.Logf("p%d: pending %d ack-pending %d redelivered %d waiting %d groups %+v", p, ci.NumPending, ci.NumAckPending, ci.NumRedelivered, ci.NumWaiting, ci.PriorityGroups)
			}
			t.Fatalf("%d of %d deliveries missing", missing, len(want))
		}
		time.Sleep(200 * time.Millisecond)
	}
	elapsed := time.Since(killedAt)
	mu.Lock()
	dups := 0
	for _, n := range got {
		if n > 1 {
			dups++
		}
	}
	mu.Unlock()
	if dups > 0 {
		t.Errorf("%d messages delivered more than once", dups)
	}
	after := pins()
	moved, pinned := 0, 0
	for p, id := range before {
		if id != "" {
			pinned++
			if after[p] != id {
				moved++
			}
		}
	}
	var takeover time.Duration
	for _, d := range resumed {
		takeover = max(takeover, d)
	}
	t.Logf("%d commands (sends and a self-update in 40) in %d groups, 3 workers, one killed with SIGKILL after %d; %d deliveries, none lost, %d duplicated; %d of the %d pinned partitions changed worker, every group served again %v after the kill (pinned TTL 2 s, ack wait 0.5 s; a unit the dead worker left under way waits for jetstore's Grace, 10 s); the load finished %v after it; %d commands refused",
		sent.Load(), groupsN, sends/3, len(want), dups, moved, pinned, takeover.Round(time.Millisecond), elapsed.Round(time.Millisecond), failed.Load())
	if failed.Load() > 0 {
		t.Errorf("%d commands refused", failed.Load())
	}
	if moved == 0 {
		t.Error("no partition changed worker: the kill tested no takeover")
	}
	// Agreement, and no key material of dead epochs.
	for _, gr := range groups {
		var auth string
		for _, m := range gr.members {
			g, s := f.load(ctx, m, gr.id)
			a := string(g.EpochAuthenticator().Bytes())
			if auth != "" && a != auth {
				t.Errorf("%s disagrees in %s", m, gr.id)
			}
			auth = a
			if _, err := s.Sweep(ctx); err != nil {
				t.Fatal(err)
			}
			r, err := s.Check(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Orphans) > 0 {
				t.Errorf("%s: orphaned key material %v", m, r.Orphans)
			}
			s.Close()
		}
	}
}

func mustHex(t *testing.T, h string) string {
	k, err := jetstore.ParseRootKey([]byte(h))
	if err != nil {
		t.Fatal(err)
	}
	return string(k)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
