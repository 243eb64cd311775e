package engine_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/storage"
	"github.com/mlsengine/mlsengine/storage/memory"
)

// newRand is a deterministic io.Reader for tests.
func newRand(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	s[0], s[1], s[2], s[3] = byte(seed), byte(seed>>8), byte(seed>>16), byte(seed>>24)
	return rand.NewChaCha8(s)
}

var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// testStore is what a test member keeps its state in: a backend whose raw
// contents the test can read (storage/memory, or a wrapper around it).
type testStore interface {
	storage.Backend
	storage.Inspector
}

// member is one test client with its own backend, as a real deployment
// would have.
type member struct {
	name   string
	store  testStore
	signer *ciphersuite.SigningKey
	cred   wire.Credential
	cfg    *engine.Config
	g      *engine.Group
}

func newMember(t testing.TB, name string, seed uint64) *member {
	t.Helper()
	return newMemberIn(t, name, seed, memory.New())
}

// memberMaker makes the members of a test, each with its own backend.
type memberMaker func(t testing.TB, name string, seed uint64) *member

// jetMembers makes members whose backends are jetstore members of one
// embedded server, each reopened on a new connection before every storage
// call.
func jetMembers(t testing.TB) memberMaker {
	e := newJetEnv(t)
	return func(t testing.TB, name string, seed uint64) *member {
		return newMemberIn(t, name, seed, e.store(t, name, true))
	}
}

// newMemberIn makes a member whose state is kept in store.
func newMemberIn(t testing.TB, name string, seed uint64, store testStore) *member {
	t.Helper()
	rnd := newRand(seed)
	s, err := ciphersuite.Lookup(engine.DefaultSuite)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := s.GenerateSigningKey(rnd)
	if err != nil {
		t.Fatal(err)
	}
	return &member{
		name:   name,
		store:  store,
		signer: sk,
		cred:   wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: []byte(name)},
		cfg: &engine.Config{Config: group.Config{
			Rand:                   rnd,
			Now:                    func() time.Time { return testNow },
			MaxPastEpochs:          2,
			NumberOfResumptionPSKs: 2,
			RatchetTreeExtension:   true,
		}},
	}
}

func (m *member) create(t testing.TB, groupID []byte) {
	t.Helper()
	cfg := *m.cfg
	cfg.GroupID = groupID
	g, err := engine.NewGroup(context.Background(), m.store, m.signer, &cfg, m.cred)
	if err != nil {
		t.Fatal(err)
	}
	m.g = g
}

func (m *member) keyPackage(t testing.TB, lastResort bool) *wire.KeyPackage {
	t.Helper()
	kp, err := engine.NewKeyPackage(context.Background(), m.store, m.signer, m.cfg, m.cred, &engine.KeyPackageOptions{LastResort: lastResort})
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func (m *member) join(t testing.TB, welcome *wire.MLSMessage) {
	t.Helper()
	g, err := engine.JoinGroup(context.Background(), m.store, welcome, m.cfg, nil)
	if err != nil {
		t.Fatalf("%s joins: %v", m.name, err)
	}
	m.g = g
}

// reload replaces the member's handle by a fresh load from its backend.
func (m *member) reload(t testing.TB) {
	t.Helper()
	g, err := engine.LoadGroup(context.Background(), m.store, m.g.GroupID(), m.cfg)
	if err != nil {
		t.Fatalf("%s reloads: %v", m.name, err)
	}
	m.g = g
}

// raw returns everything the member's backend holds.
func raw(t testing.TB, b storage.Inspector) [][]byte {
	t.Helper()
	rc, err := b.RawContents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// rawDigest is a digest of everything a backend holds, to show that an
// operation changed nothing. RawContents has no order, so it is sorted.
func rawDigest(t testing.TB, b storage.Inspector) [32]byte {
	t.Helper()
	h := sha256.New()
	rc := raw(t, b)
	slices.SortFunc(rc, bytes.Compare)
	for _, v := range rc {
		fmt.Fprintf(h, "%d:", len(v))
		h.Write(v)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// holds reports whether any raw value of the backend contains secret.
func holds(t testing.TB, b storage.Inspector, secret []byte) bool {
	t.Helper()
	for _, v := range raw(t, b) {
		if bytes.Contains(v, secret) {
			return true
		}
	}
	return false
}

func mustAgree(t testing.TB, ms ...*member) {
	t.Helper()
	a := ms[0].g.EpochAuthenticator()
	for _, m := range ms[1:] {
		if m.g.Epoch() != ms[0].g.Epoch() || !m.g.EpochAuthenticator().Equal(a) {
			t.Fatalf("%s (epoch %d) disagrees with %s (epoch %d)", m.name, m.g.Epoch(), ms[0].name, ms[0].g.Epoch())
		}
	}
}

// land merges the committer's pending commit and has each other member
// process and merge it.
func land(t testing.TB, committer *member, res *engine.CommitResult, others ...*member) {
	t.Helper()
	ctx := context.Background()
	if err := committer.g.MergePendingCommit(ctx); err != nil {
		t.Fatalf("%s merges its commit: %v", committer.name, err)
	}
	for _, m := range others {
		rm, err := m.g.Process(ctx, res.Commit)
		if err != nil {
			t.Fatalf("%s processes the commit: %v", m.name, err)
		}
		if err := m.g.MergeStagedCommit(ctx, rm.Commit); err != nil {
			t.Fatalf("%s merges the commit: %v", m.name, err)
		}
	}
}
