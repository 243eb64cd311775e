package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlsengine/mlsengine/events"
	"github.com/mlsengine/mlsengine/jetstore"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/natsrv"
	"github.com/mlsengine/mlsengine/storage"
	"github.com/mlsengine/mlsengine/worker"
)

var adminRoot = []byte("mlsadmin-tests-root-key-01234567")

// deployment is an in-process worker on an embedded server, driven with
// an events client, and mlsadmin run against it.
type deployment struct {
	t   *testing.T
	ctx context.Context
	url string
	js  jetstream.JetStream
	c   *events.Client
	evs <-chan *events.Event
}

func startDeployment(t *testing.T) *deployment {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := natsrv.StartEmbedded(ctx, natsrv.EmbeddedOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	cfg := worker.Config{JS: js, Partitions: 4, PinnedTTL: time.Second, Store: jetstore.Options{RootKey: adminRoot, SweepInterval: -1}}
	cfg.Engine.RatchetTreeExtension = true
	cfg.Engine.MaxPastEpochs = 2
	w, err := worker.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		if err := w.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
		close(done)
	}()
	c, err := events.NewClient(ctx, js, events.Subjects{}, "")
	if err != nil {
		t.Fatal(err)
	}
	evs, stop := c.Subscribe(func(*events.Event) bool { return true }, 4096)
	t.Cleanup(func() {
		stop()
		c.Close()
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("the worker did not stop")
		}
		nc.Close()
		srv.Shutdown()
	})
	t.Setenv("MLS_ROOT_KEY", hex.EncodeToString(adminRoot))
	return &deployment{t: t, ctx: ctx, url: srv.ClientURL(), js: js, c: c, evs: evs}
}

func (d *deployment) ok(cmd *events.Command) *events.Result {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(d.ctx, 20*time.Second)
	defer cancel()
	r, err := d.c.Do(ctx, cmd)
	if err != nil {
		d.t.Fatal(err)
	}
	if !r.OK {
		d.t.Fatalf("%s for %s: %s %s", cmd.Kind, cmd.Member, r.Code, r.Error)
	}
	return r
}

func (d *deployment) wait(what string, match func(*events.Event) bool) *events.Event {
	d.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case e := <-d.evs:
			if match(e) {
				return e
			}
		case <-timeout:
			d.t.Fatalf("no event: %s", what)
		}
	}
}

// admin runs mlsadmin against the deployment.
func (d *deployment) admin(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(d.ctx, append(args, "--nats", d.url), &out, &errOut)
	return code, out.String(), errOut.String()
}

// mustAdmin runs mlsadmin and fails unless it exits 0.
func (d *deployment) mustAdmin(args ...string) string {
	d.t.Helper()
	code, out, errOut := d.admin(args...)
	if code != 0 {
		d.t.Fatalf("mlsadmin %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func (d *deployment) mustJSON(v any, args ...string) {
	d.t.Helper()
	out := d.mustAdmin(append([]string{"--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		d.t.Fatalf("mlsadmin %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestAdminCommands(t *testing.T) {
	d := startDeployment(t)
	dir := t.TempDir()
	const plaintext = "the plaintext that history keeps to itself"
	gid := []byte("team")
	for _, m := range []string{"alice", "bob"} {
		d.ok(&events.Command{Kind: events.CmdCreateMember, Member: m})
	}
	kp := d.ok(&events.Command{Kind: events.CmdKeyPackages, Member: "bob"}).KeyPackages
	d.ok(&events.Command{Kind: events.CmdCreateGroup, Member: "alice", Group: gid})
	d.ok(&events.Command{Kind: events.CmdAdd, Member: "alice", Group: gid, KeyPackages: kp})
	d.wait("bob joins", func(e *events.Event) bool { return e.Kind == events.EvJoined && e.Member == "bob" })
	d.ok(&events.Command{Kind: events.CmdSend, Member: "alice", Group: gid, Data: []byte(plaintext)})
	d.wait("bob reads", func(e *events.Event) bool { return e.Kind == events.EvApplication && e.Member == "bob" })

	var in inspection
	d.mustJSON(&in, "inspect", "alice", "team")
	var ids []string
	for _, m := range in.Members {
		ids = append(ids, m.Identity)
	}
	if in.Epoch != 1 || !slices.Equal(ids, []string{"alice", "bob"}) || !in.Members[0].Own || in.Members[1].Own {
		t.Fatalf("inspect: epoch %d, members %+v", in.Epoch, in.Members)
	}
	if in.Tree != (treeJSON{Leaves: 2, Width: 3, TreeHash: in.Tree.TreeHash}) || !slices.Contains(in.PastEpochs, 0) || in.PendingCommit ||
		in.LastAppliedSeq == 0 || in.Version == 0 || in.KeyMaterial["epoch_secrets"] != 1 || in.ClientKeyMaterial["signature_private_key"] != 1 ||
		in.CipherSuite.ID != 1 {
		t.Fatalf("inspect: %+v", in)
	}
	human := d.mustAdmin("inspect", "alice", "team")
	for _, want := range []string{"epoch", "past epochs", "last applied seq", "signature_private_key 1"} {
		if !strings.Contains(human, want) {
			t.Errorf("inspect lacks %q:\n%s", want, human)
		}
	}

	var gs groupsJSON
	d.mustJSON(&gs, "groups")
	if len(gs.Groups) != 1 || gs.Groups[0].GroupID != "team" || !slices.Equal(gs.Groups[0].Members, []string{"alice", "bob"}) {
		t.Fatalf("groups: %+v", gs)
	}
	d.mustJSON(&gs, "groups", "--member", "bob", "--group-prefix", "te")
	if len(gs.Groups) != 1 {
		t.Fatalf("groups of bob under te: %+v", gs)
	}
	d.mustJSON(&gs, "groups", "--group-prefix", "hex:00")
	if len(gs.Groups) != 0 {
		t.Fatalf("groups under hex:00: %+v", gs)
	}
	if out := d.mustAdmin("members", "bob", "team"); !strings.Contains(out, "alice") || !strings.Contains(out, "(own)") {
		t.Fatalf("members:\n%s", out)
	}

	// History: every input, no plaintext unless asked.
	hist := d.mustAdmin("history", "team")
	for _, want := range []string{"create-group", "cmd=add", "cmd=send", "commit", "welcome", "private_message", "joined", "app"} {
		if !strings.Contains(hist, want) {
			t.Errorf("history lacks %q:\n%s", want, hist)
		}
	}
	if strings.Contains(hist, plaintext) {
		t.Fatalf("history shows plaintext without --plaintext:\n%s", hist)
	}
	if out := d.mustAdmin("history", "team", "--plaintext"); !strings.Contains(out, plaintext) {
		t.Fatalf("history --plaintext lacks the plaintext:\n%s", out)
	}
	var h historyJSON
	d.mustJSON(&h, "history", "team", "--limit", "3")
	if len(h.Entries) != 3 || !slices.IsSortedFunc(h.Entries, func(a, b historyEntry) int { return a.Time.Compare(b.Time) }) {
		t.Fatalf("history --limit 3: %+v", h.Entries)
	}

	// Key packages.
	kpFile := filepath.Join(dir, "kps")
	var kps keyPackagesJSON
	d.mustJSON(&kps, "keypackage", "bob", "--count", "2", "--out", kpFile)
	b, _ := os.ReadFile(kpFile)
	lines := strings.Fields(string(b))
	if len(kps.KeyPackages) != 2 || len(lines) != 2 {
		t.Fatalf("keypackage: %+v, %d lines", kps, len(lines))
	}
	for _, l := range lines {
		raw, err := base64.StdEncoding.DecodeString(l)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := wire.Unmarshal[wire.KeyPackage](raw); err != nil {
			t.Fatalf("key package line: %v", err)
		}
	}

	// Missing members and groups say so.
	if code, _, errOut := d.admin("load", "alice", "nosuch"); code != 1 || !strings.Contains(errOut, "has no group nosuch") {
		t.Fatalf("load of a missing group: exit %d: %s", code, errOut)
	}
	if code, _, errOut := d.admin("inspect", "nobody", "team"); code != 1 || !strings.Contains(errOut, "no such hosted member") {
		t.Fatalf("inspect of a missing member: exit %d: %s", code, errOut)
	}

	// Backups: to an age key and to a passphrase.
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	idFile, keyBackup := filepath.Join(dir, "id.txt"), filepath.Join(dir, "alice.age")
	os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600)
	d.mustAdmin("backup", "alice", "--out", keyBackup, "--recipient", id.Recipient().String())
	passFile, wrongFile, passBackup := filepath.Join(dir, "pass"), filepath.Join(dir, "wrong"), filepath.Join(dir, "alice-pass.age")
	os.WriteFile(passFile, []byte("correct horse\n"), 0o600)
	os.WriteFile(wrongFile, []byte("battery staple\n"), 0o600)
	d.mustAdmin("backup", "alice", "--out", passBackup, "--passphrase-file", passFile)
	if code, _, errOut := d.admin("backup", "alice", "--out", passBackup, "--passphrase-file", passFile); code != 1 || !strings.Contains(errOut, "exists") {
		t.Fatalf("backup over an existing file: exit %d: %s", code, errOut)
	}
	st, err := jetstore.Open(d.ctx, d.js, jetstore.Options{Member: "alice", RootKey: adminRoot, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	sig, err := st.List(d.ctx, storage.ClientScope(), storage.KeyMaterial, "signature/")
	st.Close()
	if err != nil || len(sig) != 1 {
		t.Fatalf("alice's signature key record: %v, %d", err, len(sig))
	}
	for _, f := range []string{keyBackup, passBackup} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v", f, fi.Mode())
		}
		b, _ := os.ReadFile(f)
		v := sig[0].Value
		if bytes.Contains(b, v) || bytes.Contains(b, v[len(v)-32:]) {
			t.Fatalf("%s holds the signature private key in clear", f)
		}
	}

	// A wrong passphrase opens nothing and writes nothing.
	if code, _, errOut := d.admin("restore", passBackup, "--as", "alice3", "--passphrase-file", wrongFile); code != 1 || !strings.Contains(errOut, "does not open") {
		t.Fatalf("restore with a wrong passphrase: exit %d: %s", code, errOut)
	}
	if code, _, _ := d.admin("load", "alice3", "team"); code != 1 {
		t.Fatal("alice3 exists after a failed restore")
	}

	// Restore as alice2: the same group state, no cursor.
	out := d.mustAdmin("restore", keyBackup, "--as", "alice2", "--identity", idFile)
	if !strings.Contains(out, "1 worker cursor dropped") {
		t.Fatalf("restore:\n%s", out)
	}
	if code, _, errOut := d.admin("restore", keyBackup, "--as", "alice2", "--identity", idFile); code != 1 || !strings.Contains(errOut, "exists already") {
		t.Fatalf("restore into an existing member: exit %d: %s", code, errOut)
	}
	var src, dst loadSummary
	d.mustJSON(&src, "load", "alice", "team")
	d.mustJSON(&dst, "load", "alice2", "team")
	if src.Epoch != dst.Epoch || src.EpochAuthenticatorFP != dst.EpochAuthenticatorFP || dst.Members != 2 || dst.OwnLeaf != 0 {
		t.Fatalf("restored %+v, source %+v", dst, src)
	}
	var in2 inspection
	d.mustJSON(&in2, "inspect", "alice2", "team")
	if in2.LastAppliedSeq != 0 || in2.KeyMaterial["epoch_secrets"] != 1 {
		t.Fatalf("restored inspect: %+v", in2)
	}

	// Delete the source: refused without --yes off a terminal, then done.
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stdin = f
	defer func() { stdin = os.Stdin }()
	if code, _, errOut := d.admin("delete", "alice", "team"); code != 2 || !strings.Contains(errOut, "--yes") {
		t.Fatalf("delete without --yes: exit %d: %s", code, errOut)
	}
	d.mustAdmin("delete", "alice", "team", "--yes")
	if code, _, errOut := d.admin("load", "alice", "team"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Fatalf("load after delete: exit %d: %s", code, errOut)
	}
	if code, _, errOut := d.admin("delete", "alice", "team", "--yes"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Fatalf("deleting again: exit %d: %s", code, errOut)
	}

	// The restored member works on through the worker.
	d.ok(&events.Command{Kind: events.CmdSend, Member: "alice2", Group: gid, Data: []byte("from the restored alice")})
	e := d.wait("bob reads alice2", func(e *events.Event) bool {
		return e.Kind == events.EvApplication && e.Member == "bob" && string(e.Data) == "from the restored alice"
	})
	if e.Sender == nil || e.Sender.Leaf != 0 {
		t.Fatalf("bob read it from %+v", e.Sender)
	}
}
