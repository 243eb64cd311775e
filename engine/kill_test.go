package engine_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/jetstore"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/natsrv"
)

// The kill test: a child process (this test binary, re-run as
// TestHelperKillChild) drives alice and bob, each a jetstore member on a
// server in the parent, through application messages and commits, and is
// killed with SIGKILL at random moments. Each new child first recovers
// (sweep, load, finish or drop the commit the last one was making), checks
// that the two agree and can talk, and only then goes on; the parent fails
// if a child ever exits on its own. A final child checks that no orphaned
// key material is left.

const killGroup = "killed"

func TestJetStoreKill(t *testing.T) {
	kills := 60
	if testing.Short() {
		kills = 15
	}
	ctx := context.Background()
	srv, err := natsrv.StartEmbedded(ctx, natsrv.EmbeddedOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	dir := t.TempDir()
	// The group exists before the first child.
	{
		a, b := killMember(t, srv.ClientURL(), "alice", 70), killMember(t, srv.ClientURL(), "bob", 71)
		a.create(t, []byte(killGroup))
		res, err := a.g.AddMembers(ctx, []*wire.KeyPackage{b.keyPackage(t, false)})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.g.MergePendingCommit(ctx); err != nil {
			t.Fatal(err)
		}
		b.join(t, res.Welcome)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	progress := 0
	for k := 0; k <= kills; k++ {
		final := k == kills
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperKillChild$", "-test.v")
		cmd.Env = append(os.Environ(), "MLS_KILL_CHILD_URL="+srv.ClientURL(), "MLS_KILL_CHILD_DIR="+dir)
		if final {
			cmd.Env = append(cmd.Env, "MLS_KILL_CHILD_FINAL=1")
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		var log []string
		ready := false
		timeout := time.After(60 * time.Second)
		for !ready {
			select {
			case l, ok := <-lines:
				if !ok {
					cmd.Wait()
					t.Fatalf("child %d ended before it was ready:\n%s", k, strings.Join(log, "\n"))
				}
				log = append(log, l)
				if strings.HasPrefix(l, "KILLCHILD ready") {
					ready = true
				}
			case <-timeout:
				cmd.Process.Kill()
				t.Fatalf("child %d not ready:\n%s", k, strings.Join(log, "\n"))
			}
		}
		if final {
			for l := range lines {
				log = append(log, l)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("final check failed: %v\n%s", err, strings.Join(log, "\n"))
			}
			for _, l := range log {
				if strings.HasPrefix(l, "KILLCHILD") {
					t.Log(l)
				}
			}
			break
		}
		time.Sleep(time.Duration(rng.IntN(120)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		for l := range lines {
			log = append(log, l)
			if strings.HasPrefix(l, "KILLCHILD op") {
				progress++
			}
		}
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("child %d did not die by SIGKILL (%v):\n%s", k, err, strings.Join(log, "\n"))
		}
	}
	t.Logf("%d children killed with SIGKILL, %d operations completed between kills", kills, progress)
	if progress < kills {
		t.Errorf("only %d operations completed in %d runs: the kills hit recovery, not work", progress, kills)
	}
}

func killMember(t testing.TB, url, name string, seed uint64) *member {
	nc, err := natsrv.Connect(context.Background(), natsrv.ConnectOptions{URL: url, Name: "kill-" + name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	s, err := jetstore.Open(context.Background(), js, jetstore.Options{Member: name, RootKey: jetRoot, SweepInterval: -1, Grace: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return newMemberIn(t, name, seed, s)
}

// TestHelperKillChild is the child of TestJetStoreKill; run alone, it
// returns at once.
func TestHelperKillChild(t *testing.T) {
	url, dir := os.Getenv("MLS_KILL_CHILD_URL"), os.Getenv("MLS_KILL_CHILD_DIR")
	if url == "" {
		return
	}
	ctx := context.Background()
	ms := []*member{killMember(t, url, "alice", uint64(time.Now().UnixNano())), killMember(t, url, "bob", uint64(time.Now().UnixNano()+1))}
	fail := func(format string, args ...any) {
		fmt.Printf("KILLCHILD FAIL "+format+"\n", args...)
		os.Exit(3)
	}
	commitFile := filepath.Join(dir, "commit")
	// Recovery.
	for _, m := range ms {
		s := m.store.(*jetstore.Store)
		if _, err := s.Sweep(ctx); err != nil {
			fail("%s sweep: %v", m.name, err)
		}
		g, err := engine.LoadGroup(ctx, s, []byte(killGroup), m.cfg)
		if err != nil {
			fail("%s load: %v", m.name, err)
		}
		m.g = g
	}
	var fileEpoch uint64 = ^uint64(0)
	var fileCommit []byte
	var fileFrom byte
	if b, err := os.ReadFile(commitFile); err == nil && len(b) > 9 {
		fileEpoch, fileFrom, fileCommit = binary.BigEndian.Uint64(b), b[8], b[9:]
	}
	for i, m := range ms {
		if m.g.HasPendingCommit() {
			if fileEpoch == m.g.Epoch() && int(fileFrom) == i {
				if err := m.g.MergePendingCommit(ctx); err != nil {
					fail("%s merges its pending commit: %v", m.name, err)
				}
			} else if err := m.g.ClearPendingCommit(ctx); err != nil {
				fail("%s clears its pending commit: %v", m.name, err)
			}
		}
	}
	for i, m := range ms {
		other := ms[1-i]
		if m.g.Epoch()+1 == other.g.Epoch() {
			if fileEpoch != m.g.Epoch() {
				fail("%s is one epoch behind and the commit is not in the file", m.name)
			}
			rm, err := m.g.ProcessBytes(ctx, fileCommit)
			if err != nil {
				fail("%s processes the commit: %v", m.name, err)
			}
			if err := m.g.MergeStagedCommit(ctx, rm.Commit); err != nil {
				fail("%s merges the commit: %v", m.name, err)
			}
		}
	}
	talk := func(from, to *member, text string) {
		msg, err := from.g.Protect(ctx, []byte(text), nil)
		if err != nil {
			fail("%s protects: %v", from.name, err)
		}
		rm, err := to.g.Process(ctx, msg)
		if err != nil || string(rm.ApplicationData) != text {
			fail("%s reads %s: %v", to.name, from.name, err)
		}
	}
	if ms[0].g.Epoch() != ms[1].g.Epoch() || !ms[0].g.EpochAuthenticator().Equal(ms[1].g.EpochAuthenticator()) {
		fail("alice (epoch %d) and bob (epoch %d) disagree after recovery", ms[0].g.Epoch(), ms[1].g.Epoch())
	}
	talk(ms[0], ms[1], "recovered")
	talk(ms[1], ms[0], "recovered too")
	fmt.Printf("KILLCHILD ready epoch %d\n", ms[0].g.Epoch())
	if os.Getenv("MLS_KILL_CHILD_FINAL") != "" {
		for _, m := range ms {
			s := m.store.(*jetstore.Store)
			if _, err := s.Sweep(ctx); err != nil {
				fail("%s sweep: %v", m.name, err)
			}
			r, err := s.Check(ctx)
			if err != nil {
				fail("%s check: %v", m.name, err)
			}
			if len(r.Orphans) > 0 || len(r.Unfinished) > 0 {
				fail("%s: orphans %v unfinished %v", m.name, r.Orphans, r.Unfinished)
			}
			fmt.Printf("KILLCHILD final %s: %d live key-material records, no orphan\n", m.name, r.KeyMaterial)
		}
		return
	}
	for n := 0; ; n++ {
		i := n % 2
		from, to := ms[i], ms[1-i]
		if n%5 == 4 {
			e := from.g.Epoch()
			res, err := from.g.SelfUpdate(ctx, nil)
			if err != nil {
				fail("%s commits: %v", from.name, err)
			}
			b := binary.BigEndian.AppendUint64(nil, e)
			b = append(b, byte(i))
			b = append(b, res.Commit.Bytes()...)
			tmp := commitFile + ".tmp"
			if err := os.WriteFile(tmp, b, 0o600); err != nil {
				fail("%v", err)
			}
			if err := os.Rename(tmp, commitFile); err != nil {
				fail("%v", err)
			}
			if err := from.g.MergePendingCommit(ctx); err != nil {
				fail("%s merges: %v", from.name, err)
			}
			rm, err := to.g.Process(ctx, res.Commit)
			if err != nil {
				fail("%s processes: %v", to.name, err)
			}
			if err := to.g.MergeStagedCommit(ctx, rm.Commit); err != nil {
				fail("%s merges: %v", to.name, err)
			}
		} else {
			talk(from, to, fmt.Sprintf("message %d", n))
		}
		fmt.Printf("KILLCHILD op %d epoch %d\n", n, from.g.Epoch())
	}
}
