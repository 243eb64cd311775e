package engine_test

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/storage"
)

// Bounds every unit of an operation on an existing group must keep in the
// groups these tests build (up to a few hundred members, commits of a few
// proposals by value), whatever the traffic: units that store a whole
// group (creating, joining, copying it) are exempt, since their size is
// the group's. They are far below storage's limits.
const (
	trafficUnitOps   = 96
	trafficUnitBytes = 96 << 10
)

// boundedStore checks the size of every unit it is given against the
// traffic bounds, and records the largest.
type boundedStore struct {
	testStore
	t testing.TB

	mu                 sync.Mutex
	maxOps, maxBytes   int
	units, exemptUnits int
}

func newBoundedStore(t testing.TB, b testStore) *boundedStore {
	return &boundedStore{testStore: b, t: t}
}

func (b *boundedStore) Apply(ctx context.Context, u *storage.Unit) (uint64, error) {
	if err := u.Validate(); err == nil {
		b.mu.Lock()
		if u.Creates() {
			b.exemptUnits++
		} else {
			b.units++
			b.maxOps, b.maxBytes = max(b.maxOps, u.Ops()), max(b.maxBytes, u.Bytes())
			if u.Ops() > trafficUnitOps || u.Bytes() > trafficUnitBytes {
				b.t.Errorf("a unit of %d operations and %d bytes, beyond the traffic bounds (%d, %d)", u.Ops(), u.Bytes(), trafficUnitOps, trafficUnitBytes)
			}
		}
		b.mu.Unlock()
	}
	return b.testStore.Apply(ctx, u)
}

// TestBusyEpochs is a member of a busy group: 300 members each send a
// message that alice decrypts, then alice self-updates and everyone
// merges, several epochs in a row, every member reloaded from its backend
// before each operation. Each dying epoch's secret tree holds a ratchet
// per sender; deleting them one by one made units grow with the number of
// senders until alice could no longer leave the epoch.
func TestBusyEpochs(t *testing.T) {
	ctx := context.Background()
	senders, epochs := 300, 4
	if testing.Short() {
		senders, epochs = 60, 3
	}
	alice := newMember(t, "alice", 1000)
	bs := newBoundedStore(t, alice.store)
	alice.store = bs
	alice.create(t, []byte("busy"))
	others := make([]*member, senders)
	kps := make([]*wire.KeyPackage, 0, senders)
	for i := range others {
		others[i] = newMember(t, "m"+strconv.Itoa(i), 1001+uint64(i))
		others[i].store = newBoundedStore(t, others[i].store)
		kps = append(kps, others[i].keyPackage(t, false))
	}
	res, err := alice.g.AddMembers(ctx, kps)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.g.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, m := range others {
		m.join(t, res.Welcome)
	}
	for e := range epochs {
		for i, m := range others {
			m.reload(t)
			msg, err := m.g.Protect(ctx, []byte("from "+m.name), nil)
			if err != nil {
				t.Fatalf("epoch %d: %s protects: %v", e, m.name, err)
			}
			alice.reload(t)
			rm, err := alice.g.Process(ctx, msg)
			if err != nil || string(rm.ApplicationData) != "from "+m.name {
				t.Fatalf("epoch %d: alice decrypts message %d: %v", e, i, err)
			}
		}
		alice.reload(t)
		res, err := alice.g.SelfUpdate(ctx, nil)
		if err != nil {
			t.Fatalf("epoch %d: self-update: %v", e, err)
		}
		alice.reload(t)
		if err := alice.g.MergePendingCommit(ctx); err != nil {
			t.Fatalf("epoch %d: merge: %v", e, err)
		}
		for _, m := range others {
			m.reload(t)
			rm, err := m.g.Process(ctx, res.Commit)
			if err != nil {
				t.Fatalf("epoch %d: %s processes the commit: %v", e, m.name, err)
			}
			if err := m.g.MergeStagedCommit(ctx, rm.Commit); err != nil {
				t.Fatalf("epoch %d: %s merges: %v", e, m.name, err)
			}
		}
		alice.reload(t)
		for _, m := range others {
			m.reload(t)
		}
		mustAgree(t, append([]*member{alice}, others...)...)
	}
	t.Logf("alice's %d units: at most %d operations and %d bytes", bs.units, bs.maxOps, bs.maxBytes)
}
