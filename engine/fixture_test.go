package engine_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/storage"
	"github.com/mlsengine/mlsengine/storage/memory"
)

// The stability fixtures: stores written by one version of the engine,
// which every later version must load and keep using. Each directory of
// testdata/fixtures is one record-encoding generation; never edit or
// regenerate an existing one. When the encoding changes, bump the version
// in the records and generate a new directory:
//
//	go test ./engine -run TestFixtures -write-fixture=testdata/fixtures/v2
var writeFixture = flag.String("write-fixture", "", "write a new fixture directory instead of checking")

// fixtureRecord is one stored record in a fixture file.
type fixtureRecord struct {
	Group string `json:"group,omitempty"` // hex group id; absent for client scope
	Class string `json:"class"`           // "public" or "key-material"
	Name  string `json:"name"`
	Value string `json:"value"` // hex
}

// fixture is what a fixture directory's fixture.json holds: the stores of
// three clients and the inputs and expected outputs that prove they work.
type fixture struct {
	Stores        map[string][]fixtureRecord `json:"stores"`
	GroupID       string                     `json:"group_id"`
	Epoch         uint64                     `json:"epoch"`
	Authenticator string                     `json:"epoch_authenticator"`
	// Message is an application message from alice that bob has not
	// processed yet; Late one from bob of the previous epoch, which alice
	// has not processed yet.
	Message   string `json:"message"`
	Plaintext string `json:"plaintext"`
	Late      string `json:"late"`
	// Commit, pending in alice's store, commits by reference the Add of
	// carol that bob has queued; Welcome lets carol join with her stored
	// last-resort key package.
	Commit  string `json:"commit"`
	Welcome string `json:"welcome"`
}

func dumpStore(t *testing.T, b testStore, groupIDs ...[]byte) []fixtureRecord {
	t.Helper()
	ctx := context.Background()
	var out []fixtureRecord
	add := func(rs []storage.Record) {
		for _, r := range rs {
			fr := fixtureRecord{Class: r.Key.Class.String(), Name: r.Key.Name, Value: hex.EncodeToString(r.Value)}
			if r.Key.Scope.IsGroup() {
				fr.Group = hex.EncodeToString(r.Key.Scope.GroupID())
			}
			out = append(out, fr)
		}
	}
	for _, c := range []storage.Class{storage.Public, storage.KeyMaterial} {
		rs, err := b.List(ctx, storage.ClientScope(), c, "")
		if err != nil {
			t.Fatal(err)
		}
		add(rs)
	}
	for _, id := range groupIDs {
		recs, err := b.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		add(recs.Records)
	}
	return out
}

func loadStore(t *testing.T, rs []fixtureRecord) *memory.Backend {
	t.Helper()
	b := memory.New()
	units := map[string]*storage.Unit{}
	for _, fr := range rs {
		v, err := hex.DecodeString(fr.Value)
		if err != nil {
			t.Fatal(err)
		}
		k := storage.Key{Scope: storage.ClientScope(), Class: storage.Public, Name: fr.Name}
		if fr.Class == storage.KeyMaterial.String() {
			k.Class = storage.KeyMaterial
		}
		if fr.Group != "" {
			id, err := hex.DecodeString(fr.Group)
			if err != nil {
				t.Fatal(err)
			}
			k.Scope = storage.GroupScope(id)
		}
		u := units[fr.Group]
		if u == nil {
			u = &storage.Unit{Scope: k.Scope}
			units[fr.Group] = u
		}
		u.Puts = append(u.Puts, storage.Record{Key: k, Value: v})
	}
	for _, u := range units {
		if _, err := b.Apply(context.Background(), u); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func TestFixtures(t *testing.T) {
	if *writeFixture != "" {
		generateFixture(t, *writeFixture)
		return
	}
	dirs, err := filepath.Glob(filepath.Join("testdata", "fixtures", "v*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) { checkFixture(t, dir) })
	}
}

func checkFixture(t *testing.T, dir string) {
	ctx := context.Background()
	b, err := os.ReadFile(filepath.Join(dir, "fixture.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx fixture
	if err := json.Unmarshal(b, &fx); err != nil {
		t.Fatal(err)
	}
	gid, _ := hex.DecodeString(fx.GroupID)
	cfg := newMember(t, "fixture", 99).cfg
	stores := map[string]*memory.Backend{}
	groups := map[string]*engine.Group{}
	for _, name := range []string{"alice", "bob", "carol"} {
		stores[name] = loadStore(t, fx.Stores[name])
	}
	for _, name := range []string{"alice", "bob"} {
		g, err := engine.LoadGroup(ctx, stores[name], gid, cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if g.Epoch() != fx.Epoch || hex.EncodeToString(g.EpochAuthenticator().Bytes()) != fx.Authenticator {
			t.Fatalf("%s: epoch %d, authenticator differs", name, g.Epoch())
		}
		groups[name] = g
	}
	msg := mustMessage(t, fx.Message)
	rm, err := groups["bob"].Process(ctx, msg)
	if err != nil || string(rm.ApplicationData) != fx.Plaintext {
		t.Fatalf("bob decrypts the stored message: %v", err)
	}
	// Alice's pending commit adds Carol, who joins with her stored key
	// package; then all three keep talking.
	if !groups["alice"].HasPendingCommit() {
		t.Fatal("alice's pending commit was not restored")
	}
	if err := groups["alice"].MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	if rm, err := groups["alice"].Process(ctx, mustMessage(t, fx.Late)); err != nil || string(rm.ApplicationData) != "late" {
		t.Fatalf("alice decrypts bob's late message: %v", err)
	}
	rm, err = groups["bob"].Process(ctx, mustMessage(t, fx.Commit))
	if err != nil {
		t.Fatalf("bob processes the commit of his queued proposal: %v", err)
	}
	if err := groups["bob"].MergeStagedCommit(ctx, rm.Commit); err != nil {
		t.Fatal(err)
	}
	carol, err := engine.JoinGroup(ctx, stores["carol"], mustMessage(t, fx.Welcome), cfg, nil)
	if err != nil {
		t.Fatalf("carol joins: %v", err)
	}
	if kps, err := engine.KeyPackages(ctx, stores["carol"]); err != nil || len(kps) != 1 {
		t.Fatalf("carol's last-resort key package: %d, %v", len(kps), err)
	}
	a, bb := groups["alice"], groups["bob"]
	for _, g := range []*engine.Group{bb, carol} {
		if g.Epoch() != a.Epoch() || !g.EpochAuthenticator().Equal(a.EpochAuthenticator()) {
			t.Fatal("members disagree after the fixture's commit")
		}
	}
	m, err := carol.Protect(ctx, []byte("hello from carol"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []*engine.Group{a, bb} {
		if rm, err := g.Process(ctx, m); err != nil || string(rm.ApplicationData) != "hello from carol" {
			t.Fatalf("carol's message: %v", err)
		}
	}
	// The stores go on being written in their layout, and load: epochs
	// with a late message across each, every member reloaded each time.
	groups["carol"] = carol
	names := []string{"alice", "bob", "carol"}
	for i := range 4 {
		from, to := names[i%3], names[(i+1)%3]
		late, err := groups[from].Protect(ctx, []byte("late"), nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := groups[from].SelfUpdate(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := groups[from].MergePendingCommit(ctx); err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			if name != from {
				rm, err := groups[name].Process(ctx, res.Commit)
				if err == nil {
					err = groups[name].MergeStagedCommit(ctx, rm.Commit)
				}
				if err != nil {
					t.Fatalf("round %d: %s merges %s's commit: %v", i, name, from, err)
				}
			}
		}
		for _, name := range names {
			if groups[name], err = engine.LoadGroup(ctx, stores[name], gid, cfg); err != nil {
				t.Fatalf("round %d: reloading %s: %v", i, name, err)
			}
		}
		if rm, err := groups[to].Process(ctx, late); err != nil || string(rm.ApplicationData) != "late" {
			t.Fatalf("round %d: %s decrypts %s's message of the epoch before: %v", i, to, from, err)
		}
		for _, name := range names[1:] {
			if !groups[name].EpochAuthenticator().Equal(groups["alice"].EpochAuthenticator()) {
				t.Fatalf("round %d: %s disagrees with alice", i, name)
			}
		}
	}
	// Store rewrites what today's encodings write differently (the engine
	// record of layout 1, for one), once: the group loads and agrees, and
	// a second Store finds nothing to write.
	for _, name := range names {
		if err := groups[name].Store(ctx); err != nil {
			t.Fatalf("%s: Store: %v", name, err)
		}
		if groups[name], err = engine.LoadGroup(ctx, stores[name], gid, cfg); err != nil {
			t.Fatalf("%s: reloading after Store: %v", name, err)
		}
		v := groups[name].Version()
		if err := groups[name].Store(ctx); err != nil || groups[name].Version() != v {
			t.Fatalf("%s: a second Store wrote a unit (%v)", name, err)
		}
		if !groups[name].EpochAuthenticator().Equal(groups["alice"].EpochAuthenticator()) {
			t.Fatalf("%s disagrees with alice after Store", name)
		}
	}
}

// generateFixture writes a new fixture directory from the current code.
func generateFixture(t *testing.T, dir string) {
	ctx := context.Background()
	if _, err := os.Stat(dir); err == nil {
		t.Fatalf("%s exists: fixtures are never regenerated", dir)
	}
	alice, bob, carol := newMember(t, "alice", 1001), newMember(t, "bob", 1002), newMember(t, "carol", 1003)
	gid := []byte("fixture-group")
	alice.create(t, gid)
	res, err := alice.g.AddMembers(ctx, []*wire.KeyPackage{bob.keyPackage(t, false)})
	if err != nil {
		t.Fatal(err)
	}
	alice.g.MergePendingCommit(ctx)
	bob.join(t, res.Welcome)
	var late *wire.MLSMessage
	for i := range 3 {
		if late, err = bob.g.Protect(ctx, []byte("late"), nil); err != nil {
			t.Fatal(err)
		}
		res, err := bob.g.SelfUpdate(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		land(t, bob, res, alice)
		if i < 2 {
			if _, err := alice.g.Process(ctx, late); err != nil {
				t.Fatal(err)
			}
		}
	}
	msg, err := alice.g.Protect(ctx, []byte("stable"), nil)
	if err != nil {
		t.Fatal(err)
	}
	prop, _, err := alice.g.ProposeAdd(ctx, carol.keyPackage(t, true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.g.Process(ctx, prop); err != nil {
		t.Fatal(err)
	}
	commit, err := alice.g.Commit(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	fx := fixture{
		Stores: map[string][]fixtureRecord{
			"alice": dumpStore(t, alice.store, gid),
			"bob":   dumpStore(t, bob.store, gid),
			"carol": dumpStore(t, carol.store),
		},
		GroupID:       hex.EncodeToString(gid),
		Epoch:         alice.g.Epoch(),
		Authenticator: hex.EncodeToString(alice.g.EpochAuthenticator().Bytes()),
		Message:       hex.EncodeToString(msg.Bytes()),
		Plaintext:     "stable",
		Late:          hex.EncodeToString(late.Bytes()),
		Commit:        hex.EncodeToString(commit.Commit.Bytes()),
		Welcome:       hex.EncodeToString(commit.Welcome.Bytes()),
	}
	out, err := json.MarshalIndent(fx, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fixture.json"), append(out, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", dir)
}

func mustMessage(t *testing.T, h string) *wire.MLSMessage {
	t.Helper()
	b, err := hex.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	m, err := wire.UnmarshalMLSMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
