package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/storage/memory"
	"github.com/mlsengine/mlsengine/storage/storagetest"
)

// The engine scenario test is the port of package group's scenario test to
// the engine: groups of 3 to 20 members, each member with its own backend,
// driven through hundreds of epochs by a seeded random mix of adds (some
// from last-resort key packages), removes, self-updates, Update proposals,
// external and resumption PSKs, external joins and resyncs, removed
// members rejoining, external proposals, GroupContextExtensions and ReInit,
// with application messages delivered in random order, late, and twice.
//
// Every member is reloaded from its own backend (LoadGroup) before every
// operation, after every epoch change and at random points in between
// (before a merge, between deliveries), so that each step acts on the
// stored state only. After every epoch change all members agree on the
// epoch, the epoch authenticator and the member list; every application
// message decrypts exactly once at every member that can read it, and a
// second delivery fails with group.ErrReplay (or group.ErrWrongEpoch once
// its epoch is gone) without writing anything; and, at random, a member's
// stored records are checked to be exactly its full state (Group.Store
// finds nothing to write).
//
// Every backend loses one in twenty requests or replies (the engine must
// retry the unit and carry on as if nothing happened), and every unit of
// an operation on an existing group is checked against the traffic bounds
// of bounds_test.go.

const (
	scnMinMembers = 3
	scnMaxMembers = 20
	scnPastEpochs = 3
)

// scnMember is a client of the scenario: a helpers_test.go member (own
// backend, signer, credential, config) with the bookkeeping of the world.
type scnMember struct {
	*member
	joinEpoch uint64           // epoch from which it can read messages
	kp        *wire.KeyPackage // while joining
	lastKP    bool             // kp is a last-resort key package
	renew     func()           // reopens the backend on a new connection
}

type scnApp struct {
	msg        *wire.MLSMessage
	epoch      uint64
	data       []byte
	sender     *scnMember
	recipients []*scnMember
}

// scnReplay is an application message that was delivered, to deliver
// again later.
type scnReplay struct {
	msg *wire.MLSMessage
	r   *scnMember
	gen int // the world's group generation it belongs to
}

type scnWorld struct {
	t        *testing.T
	ctx      context.Context
	rng      *rand.Rand
	suite    ciphersuite.ID
	seed     uint64
	members  []*scnMember
	removed  []*scnMember // removed from the current group, state still stored
	extKey   *ciphersuite.SigningKey
	psks     map[string]secret.Secret
	late     []*scnApp
	replays  []scnReplay
	nextID   int
	groupGen int
	stats    map[string]int
	lossy    []*storagetest.LossyBackend // every client's backend, for counting faults
	jet      *jetEnv                     // if set, clients keep their state in jetstore
}

func (w *scnWorld) fatalf(format string, args ...any) {
	w.t.Helper()
	w.t.Fatalf("seed %d epoch %d: "+format, append([]any{w.seed, w.stats["epochs"]}, args...)...)
}

// newClient makes a client with its own backend and a randomly drawn
// configuration.
func (w *scnWorld) newClient() *scnMember {
	w.t.Helper()
	w.nextID++
	name := "m" + strconv.Itoa(w.nextID)
	seed := w.seed*1000 + uint64(w.nextID)
	rnd := newRand(seed)
	s, err := ciphersuite.Lookup(w.suite)
	if err != nil {
		w.t.Fatal(err)
	}
	sk, err := s.GenerateSigningKey(rnd)
	if err != nil {
		w.t.Fatal(err)
	}
	// Every unit is checked against the traffic bounds, and one in twenty
	// loses its request or its reply: the engine must retry it and
	// behave as if nothing happened.
	var base testStore = memory.New()
	var renew func()
	if w.jet != nil {
		js := w.jet.store(w.t, name, false)
		base, renew = js, js.renew
	}
	lossy := storagetest.Lossy(base, storagetest.RandomFaults(seed, 0.05))
	w.lossy = append(w.lossy, lossy)
	store := newBoundedStore(w.t, lossy)
	m := &member{
		name:   name,
		store:  store,
		signer: sk,
		cred:   wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: []byte(name)},
		cfg: &engine.Config{Suite: w.suite, Config: group.Config{
			Rand:                   rnd,
			Now:                    func() time.Time { return testNow },
			MaxPastEpochs:          scnPastEpochs,
			NumberOfResumptionPSKs: 4,
			OutOfOrderTolerance:    64,
			PSKs:                   group.ExternalPSKs(w.psks),
			EncryptHandshake:       w.rng.IntN(2) == 0,
			RatchetTreeExtension:   w.rng.IntN(2) == 0,
			PaddingBlock:           []int{0, 16, 64}[w.rng.IntN(3)],
		}},
	}
	return &scnMember{member: m, renew: renew}
}

// newJoiner is a prospective member with a fresh key package in its
// backend; one in four is a last-resort key package.
func (w *scnWorld) newJoiner() *scnMember {
	j := w.newClient()
	j.lastKP = w.rng.IntN(4) == 0
	j.kp = j.keyPackage(w.t, j.lastKP)
	return j
}

func (w *scnWorld) pick() *scnMember { return w.members[w.rng.IntN(len(w.members))] }

func (w *scnWorld) pickOther(not ...*scnMember) *scnMember {
	for {
		if m := w.pick(); !slices.Contains(not, m) {
			return m
		}
	}
}

func (w *scnWorld) index(m *scnMember) int { return slices.Index(w.members, m) }

func (w *scnWorld) reload(m *scnMember) {
	w.t.Helper()
	if m.renew != nil {
		m.renew()
	}
	m.reload(w.t)
	w.stats["reload"]++
}

func (w *scnWorld) maybeReload(m *scnMember, oneIn int) {
	if w.rng.IntN(oneIn) == 0 {
		w.reload(m)
	}
}

func (w *scnWorld) groupID() []byte { return w.members[0].g.GroupID() }

// checkAgreement checks that all members are in the same epoch with the
// same epoch authenticator and see the world's members.
func (w *scnWorld) checkAgreement() {
	w.t.Helper()
	first := w.members[0].g
	want, epoch := slices.Clone(first.EpochAuthenticator().Bytes()), first.Epoch()
	for _, m := range w.members {
		if m.g.Status() == group.StatusRemoved {
			w.fatalf("%s is %v", m.name, m.g.Status())
		}
		if !bytes.Equal(m.g.EpochAuthenticator().Bytes(), want) || m.g.Epoch() != epoch {
			w.fatalf("%s (epoch %d) disagrees with %s (epoch %d)", m.name, m.g.Epoch(), w.members[0].name, epoch)
		}
		if n := len(m.g.Members()); n != len(w.members) {
			w.fatalf("%s sees %d members, world has %d", m.name, n, len(w.members))
		}
	}
}

// checkStored checks that a member's stored records are exactly its full
// state: Store, which rewrites what differs, must find nothing to write.
func (w *scnWorld) checkStored(m *scnMember) {
	w.t.Helper()
	v := m.g.Version()
	if err := m.g.Store(w.ctx); err != nil {
		w.fatalf("%s store: %v", m.name, err)
	}
	if m.g.Version() != v {
		w.fatalf("%s: stored records differ from the state (Store wrote a unit)", m.name)
	}
	w.stats["store-check"]++
}

// afterEpoch runs after every epoch change: every member is reloaded from
// its backend, then they must agree.
func (w *scnWorld) afterEpoch() {
	w.t.Helper()
	for _, m := range w.members {
		w.reload(m)
	}
	w.checkAgreement()
	w.checkStored(w.pick())
	w.stats["epochs"]++
}

// broadcast delivers a proposal to every member but the sender.
func (w *scnWorld) broadcast(from *scnMember, msg *wire.MLSMessage) {
	w.t.Helper()
	for _, m := range w.members {
		if m == from {
			continue
		}
		w.maybeReload(m, 8)
		rm, err := m.g.Process(w.ctx, msg)
		if err != nil {
			w.fatalf("%s processing a proposal of %s: %v", m.name, from.name, err)
		}
		if rm.Proposal == nil {
			w.fatalf("%s: expected a proposal", m.name)
		}
	}
}

// commit has c commit through f, delivers the commit, merges it
// everywhere, and lets the added members join from the Welcome.
func (w *scnWorld) commit(c *scnMember, f func(g *engine.Group) (*engine.CommitResult, error), joiners map[string]*scnMember) {
	w.t.Helper()
	res, err := f(c.g)
	if err != nil {
		w.fatalf("%s commit: %v", c.name, err)
	}
	var added []group.AddedMember
	if res.Welcome != nil {
		added = res.Added
	}
	if w.rng.IntN(4) == 0 {
		// The pending commit is stored: it survives a reload.
		w.reload(c)
		if !c.g.HasPendingCommit() {
			w.fatalf("%s: pending commit lost on reload", c.name)
		}
	}
	w.deliverCommit(c, res.Commit)
	if err := c.g.MergePendingCommit(w.ctx); err != nil {
		w.fatalf("%s merge: %v", c.name, err)
	}
	if res.Welcome != nil {
		w.welcome(c, res.Welcome, added, joiners)
	}
	w.afterEpoch()
}

// deliverCommit has every member but the committer process and merge a
// commit; members it removes leave the world.
func (w *scnWorld) deliverCommit(from *scnMember, msg *wire.MLSMessage) {
	w.t.Helper()
	var stay []*scnMember
	for _, m := range w.members {
		if m == from {
			stay = append(stay, m)
			continue
		}
		if !w.processAndMerge(m, msg) {
			stay = append(stay, m)
		}
	}
	w.members = stay
}

// processAndMerge has m process and merge a commit, and reports whether
// it removed m (which then joins w.removed).
func (w *scnWorld) processAndMerge(m *scnMember, msg *wire.MLSMessage) (removed bool) {
	w.t.Helper()
	v := m.g.Version()
	rm, err := m.g.Process(w.ctx, msg)
	if err != nil {
		w.fatalf("%s processing a commit: %v", m.name, err)
	}
	if rm.Commit == nil {
		w.fatalf("%s: expected a commit", m.name)
	}
	if msg.WireFormat == wire.WireFormatPublicMessage && m.g.Version() != v {
		w.fatalf("%s: staging a commit wrote to storage", m.name)
	}
	if msg.WireFormat == wire.WireFormatPublicMessage && w.rng.IntN(12) == 0 {
		// A staged commit lives in memory only: after a reload it is
		// stale, and processing the commit again stages it anew. (Not
		// for a PrivateMessage commit: processing it stored its
		// handshake key as consumed, so that after a reload it can be
		// neither merged nor processed again; see the report.)
		w.reload(m)
		if err := m.g.MergeStagedCommit(w.ctx, rm.Commit); !errors.Is(err, group.ErrStaleCommit) {
			w.fatalf("%s: merging a staged commit across a reload: %v", m.name, err)
		}
		if rm, err = m.g.Process(w.ctx, msg); err != nil {
			w.fatalf("%s processing a commit again after a reload: %v", m.name, err)
		}
		w.stats["stale-merge"]++
	}
	if err := m.g.MergeStagedCommit(w.ctx, rm.Commit); err != nil {
		w.fatalf("%s merge: %v", m.name, err)
	}
	if !rm.Commit.RemovesSelf() {
		return false
	}
	w.reload(m)
	if m.g.Status() != group.StatusRemoved {
		w.fatalf("%s: removed member is %v after a reload", m.name, m.g.Status())
	}
	if _, err := m.g.Protect(w.ctx, []byte("x"), nil); !errors.Is(err, group.ErrInactive) {
		w.fatalf("%s: removed member protects: %v", m.name, err)
	}
	w.removed = append(w.removed, m)
	w.stats["removed"]++
	return true
}

// welcome lets the added members join; each uses its stored key package,
// which is deleted unless it is a last-resort one.
func (w *scnWorld) welcome(c *scnMember, msg *wire.MLSMessage, added []group.AddedMember, joiners map[string]*scnMember) {
	w.t.Helper()
	for _, a := range added {
		j := joiners[string(a.KeyPackage.LeafNode.SignatureKey)]
		if j == nil {
			w.fatalf("unknown joiner")
		}
		var opts *engine.JoinOptions
		if !c.cfg.RatchetTreeExtension {
			opts = &engine.JoinOptions{RatchetTree: c.g.RatchetTreeBytes()}
		}
		g, err := engine.JoinGroup(w.ctx, j.store, msg, j.cfg, opts)
		if err != nil {
			w.fatalf("%s joins: %v", j.name, err)
		}
		j.g = g
		if g.OwnLeafIndex() != a.Index {
			w.fatalf("%s joined at leaf %d, commit says %d", j.name, g.OwnLeafIndex(), a.Index)
		}
		kps, err := engine.KeyPackages(w.ctx, j.store)
		if err != nil {
			w.fatal(err)
		}
		if want := map[bool]int{false: 0, true: 1}[j.lastKP]; len(kps) != want {
			w.fatalf("%s has %d key packages after joining, want %d", j.name, len(kps), want)
		}
		if w.rng.IntN(4) == 0 {
			// The same Welcome again (a redelivery) gives the joined
			// group, as stored, and changes nothing.
			again, err := engine.JoinGroup(w.ctx, j.store, msg, j.cfg, opts)
			if err != nil || again.Version() != g.Version() || !bytes.Equal(again.GroupID(), g.GroupID()) {
				w.fatalf("%s joins twice: %v, want the joined group", j.name, err)
			}
		}
		if j.lastKP {
			w.stats["last-resort-join"]++
		}
		j.kp, j.joinEpoch = nil, g.Epoch()
		w.members = append(w.members, j)
		w.stats["welcome-join"]++
	}
}

func (w *scnWorld) fatal(err error) {
	w.t.Helper()
	w.fatalf("%v", err)
}

// --- application messages ---

func (w *scnWorld) sendApps() {
	w.t.Helper()
	for range w.rng.IntN(4) {
		s := w.pick()
		w.maybeReload(s, 4)
		data := fmt.Appendf(nil, "%s says %d in %d", s.name, w.rng.Int(), s.g.Epoch())
		msg, err := s.g.Protect(w.ctx, data, []byte(s.name))
		if err != nil {
			w.fatalf("%s protect: %v", s.name, err)
		}
		var rcpt []*scnMember
		for _, m := range w.members {
			if m != s {
				rcpt = append(rcpt, m)
			}
		}
		w.late = append(w.late, &scnApp{msg: msg, epoch: s.g.Epoch(), data: data, sender: s, recipients: rcpt})
		w.stats["app-sent"]++
	}
	w.deliverApps(false)
	w.deliverReplays(false)
}

// deliverApps delivers some (all, with flush) pending application
// messages, each to some of its remaining recipients, in random order.
func (w *scnWorld) deliverApps(flush bool) {
	w.t.Helper()
	w.rng.Shuffle(len(w.late), func(i, j int) { w.late[i], w.late[j] = w.late[j], w.late[i] })
	var keep []*scnApp
	for _, am := range w.late {
		var left []*scnMember
		for _, r := range am.recipients {
			if w.index(r) < 0 {
				continue // left the group
			}
			if !flush && w.rng.IntN(3) == 0 {
				left = append(left, r)
				continue
			}
			w.deliverApp(am, r)
		}
		if len(left) > 0 {
			am.recipients = left
			keep = append(keep, am)
		}
	}
	w.late = keep
}

// deliverApp delivers an application message to r, which must decrypt it
// if its epoch is readable and reject it with ErrWrongEpoch otherwise,
// then delivers it again, which must fail with ErrReplay.
func (w *scnWorld) deliverApp(am *scnApp, r *scnMember) {
	w.t.Helper()
	w.maybeReload(r, 6)
	cur := r.g.Epoch()
	readable := am.epoch == cur || (am.epoch < cur && cur-am.epoch <= scnPastEpochs && am.epoch >= r.joinEpoch)
	v := r.g.Version()
	rm, err := r.g.Process(w.ctx, am.msg)
	if !readable {
		if !errors.Is(err, group.ErrWrongEpoch) {
			w.fatalf("%s: message of epoch %d in epoch %d (joined %d): %v", r.name, am.epoch, cur, r.joinEpoch, err)
		}
		if r.g.Version() != v {
			w.fatalf("%s: a rejected message wrote to storage", r.name)
		}
		w.stats["app-expired"]++
		return
	}
	if err != nil {
		w.fatalf("%s: message of epoch %d in epoch %d (joined %d): %v", r.name, am.epoch, cur, r.joinEpoch, err)
	}
	if !bytes.Equal(rm.ApplicationData, am.data) || rm.Epoch != am.epoch || string(rm.AuthenticatedData) != am.sender.name {
		w.fatalf("%s: wrong plaintext, epoch or authenticated data", r.name)
	}
	if r.g.Version() == v {
		w.fatalf("%s: a decryption was not stored", r.name)
	}
	if am.epoch < cur {
		w.stats["app-late"]++
	}
	w.stats["app-received"]++

	// Exactly once, across a reload too: the stored state knows the key
	// is used.
	w.maybeReload(r, 2)
	v = r.g.Version()
	var digest [32]byte
	check := w.rng.IntN(4) == 0
	if check {
		digest = rawDigest(w.t, r.store)
	}
	if _, err := r.g.Process(w.ctx, am.msg); !errors.Is(err, group.ErrReplay) {
		w.fatalf("%s: second decryption: %v", r.name, err)
	}
	if r.g.Version() != v || (check && rawDigest(w.t, r.store) != digest) {
		w.fatalf("%s: a replay wrote to storage", r.name)
	}
	if w.rng.IntN(4) == 0 {
		w.replays = append(w.replays, scnReplay{msg: am.msg, r: r, gen: w.groupGen})
	}
}

// deliverReplays delivers again some (all, with flush) messages that
// were delivered once, possibly epochs later: they must fail.
func (w *scnWorld) deliverReplays(flush bool) {
	w.t.Helper()
	var keep []scnReplay
	for _, rp := range w.replays {
		if rp.gen != w.groupGen || w.index(rp.r) < 0 {
			continue
		}
		if !flush && w.rng.IntN(4) != 0 {
			keep = append(keep, rp)
			continue
		}
		v := rp.r.g.Version()
		_, err := rp.r.g.Process(w.ctx, rp.msg)
		if !errors.Is(err, group.ErrReplay) && !errors.Is(err, group.ErrWrongEpoch) {
			w.fatalf("%s: late second delivery: %v", rp.r.name, err)
		}
		if rp.r.g.Version() != v {
			w.fatalf("%s: a late replay wrote to storage", rp.r.name)
		}
		w.stats["app-replay-late"]++
	}
	w.replays = keep
}

// --- operations ---

func scnAddProp(kp *wire.KeyPackage) *wire.Proposal {
	return &wire.Proposal{ProposalType: wire.ProposalTypeAdd, Add: &wire.Add{KeyPackage: *kp}}
}

func scnRemoveProp(l treemath.LeafIndex) *wire.Proposal {
	return &wire.Proposal{ProposalType: wire.ProposalTypeRemove, Remove: &wire.Remove{Removed: uint32(l)}}
}

func scnCommitWith(ctx context.Context, opts *group.CommitOptions) func(g *engine.Group) (*engine.CommitResult, error) {
	return func(g *engine.Group) (*engine.CommitResult, error) { return g.Commit(ctx, opts) }
}

func (w *scnWorld) opAdd() {
	n := 1 + w.rng.IntN(min(3, scnMaxMembers-len(w.members)))
	c := w.pick()
	joiners := map[string]*scnMember{}
	var byValue []*wire.KeyPackage
	for range n {
		j := w.newJoiner()
		joiners[string(j.kp.LeafNode.SignatureKey)] = j
		if w.rng.IntN(2) == 0 {
			p := w.pick()
			msg, _, err := p.g.ProposeAdd(w.ctx, j.kp)
			if err != nil {
				w.fatalf("propose add: %v", err)
			}
			w.broadcast(p, msg)
		} else {
			byValue = append(byValue, j.kp)
		}
	}
	if w.rng.IntN(2) == 0 {
		w.commit(c, func(g *engine.Group) (*engine.CommitResult, error) { return g.AddMembers(w.ctx, byValue) }, joiners)
	} else {
		var ps []*wire.Proposal
		for _, kp := range byValue {
			ps = append(ps, scnAddProp(kp))
		}
		w.commit(c, scnCommitWith(w.ctx, &group.CommitOptions{Proposals: ps, ForcePath: true}), joiners)
	}
	w.stats["add"]++
}

func (w *scnWorld) opRemove() {
	target := w.pick()
	c := w.pickOther(target)
	switch w.rng.IntN(3) {
	case 0: // by value
		leaf := target.g.OwnLeafIndex()
		w.commit(c, func(g *engine.Group) (*engine.CommitResult, error) {
			return g.RemoveMembers(w.ctx, []treemath.LeafIndex{leaf})
		}, nil)
	case 1: // the target leaves
		msg, err := target.g.Leave(w.ctx)
		if err != nil {
			w.fatalf("leave: %v", err)
		}
		w.broadcast(target, msg)
		w.commit(c, scnCommitWith(w.ctx, nil), nil)
	default: // proposed by a third member
		p := w.pickOther(target)
		msg, _, err := p.g.ProposeRemove(w.ctx, target.g.OwnLeafIndex())
		if err != nil {
			w.fatalf("propose remove: %v", err)
		}
		w.broadcast(p, msg)
		w.commit(c, scnCommitWith(w.ctx, nil), nil)
	}
	if w.index(target) >= 0 {
		w.fatalf("%s still in the group", target.name)
	}
	w.stats["remove"]++
}

func (w *scnWorld) opUpdate() {
	if w.rng.IntN(3) == 0 {
		w.commit(w.pick(), func(g *engine.Group) (*engine.CommitResult, error) { return g.SelfUpdate(w.ctx, nil) }, nil)
		w.stats["self-update"]++
		return
	}
	for range 1 + w.rng.IntN(2) {
		p := w.pick()
		msg, _, err := p.g.ProposeUpdate(w.ctx, nil)
		if err != nil {
			w.fatalf("propose update: %v", err)
		}
		w.broadcast(p, msg)
		w.maybeReload(p, 3) // the pending Update's key is stored
	}
	w.commit(w.pick(), scnCommitWith(w.ctx, nil), nil) // a committer's own Update is left out
	w.stats["update"]++
}

func (w *scnWorld) opPSK() {
	p := w.pick()
	var msg *wire.MLSMessage
	var err error
	if w.rng.IntN(2) == 0 {
		msg, _, err = p.g.ProposeExternalPSK(w.ctx, []byte("shared"))
		w.stats["psk-external"]++
	} else {
		// A resumption PSK every member keeps: an epoch no older than the
		// newest join and within NumberOfResumptionPSKs.
		lo := uint64(0)
		for _, m := range w.members {
			lo = max(lo, m.joinEpoch)
		}
		cur := p.g.Epoch()
		lo = max(lo, cur-min(cur, 4))
		msg, _, err = p.g.ProposeResumptionPSK(w.ctx, lo+uint64(w.rng.IntN(int(cur-lo+1))))
		w.stats["psk-resumption"]++
	}
	if err != nil {
		w.fatalf("propose psk: %v", err)
	}
	w.broadcast(p, msg)
	w.commit(w.pick(), scnCommitWith(w.ctx, &group.CommitOptions{ForcePath: w.rng.IntN(2) == 0}), nil)
}

// opExternalJoin has a new client join by external commit, or a member
// resync (rejoin from its own backend, deleting its stored state, with
// its old leaf removed in the same commit), or a removed member rejoin.
func (w *scnWorld) opExternalJoin() {
	src := w.pick()
	withTree := w.rng.IntN(2) == 0
	gi, err := src.g.GroupInfo(&group.GroupInfoOptions{RatchetTree: withTree})
	if err != nil {
		w.fatalf("group info: %v", err)
	}
	opts := &engine.ExternalJoinOptions{}
	if !withTree {
		opts.RatchetTree = src.g.RatchetTreeBytes()
	}
	if w.rng.IntN(3) == 0 {
		opts.PSKs = []wire.PreSharedKeyID{{PSKType: wire.PSKTypeExternal, PSKID: []byte("shared")}}
	}
	var j *scnMember
	var stale *engine.Group
	r := w.rng.IntN(6)
	switch {
	case r < 2 && len(w.members) > scnMinMembers:
		// Resync: the same client, backend and signing key.
		j = w.pickOther(src)
		stale = j.g
		leaf := j.g.OwnLeafIndex()
		opts.Resync = &leaf
		w.members = slices.DeleteFunc(w.members, func(m *scnMember) bool { return m == j })
		w.stats["resync"]++
	case r < 3 && len(w.removed) > 0:
		// A removed member rejoins: JoinExternal replaces its stored,
		// inactive state of the group.
		i := w.rng.IntN(len(w.removed))
		j = w.removed[i]
		w.removed = slices.Delete(w.removed, i, i+1)
		gid := gi.GroupInfo.GroupContext.GroupID
		if old, err := engine.LoadGroup(w.ctx, j.store, gid, j.cfg); err == nil && old.Active() {
			w.fatalf("%s was removed but its stored state is active", j.name)
		}
		w.stats["rejoin"]++
	default:
		j = w.newClient()
		w.stats["external-join"]++
	}
	g, msg, err := engine.JoinExternal(w.ctx, j.store, j.signer, j.cfg, j.cred, gi, opts)
	if err != nil {
		w.fatalf("%s external join: %v", j.name, err)
	}
	j.g, j.joinEpoch = g, g.Epoch()
	if stale != nil {
		// The handle of the old state is fenced off: its next write
		// conflicts and reloads the new state.
		if _, err := stale.Protect(w.ctx, []byte("stale"), nil); !errors.Is(err, engine.ErrConflict) {
			w.fatalf("%s: stale handle after resync: %v", j.name, err)
		}
		if stale.Epoch() != g.Epoch() || !stale.EpochAuthenticator().Equal(g.EpochAuthenticator()) {
			w.fatalf("%s: stale handle did not reload the new state", j.name)
		}
	}
	for _, m := range w.members {
		w.maybeReload(m, 8)
		rm, err := m.g.Process(w.ctx, msg)
		if err != nil {
			w.fatalf("%s processing the external commit of %s: %v", m.name, j.name, err)
		}
		if rm.Commit == nil || !rm.Commit.IsExternal() || rm.Commit.NewMemberLeaf() != g.OwnLeafIndex() {
			w.fatalf("%s: not the external commit", m.name)
		}
		if err := m.g.MergeStagedCommit(w.ctx, rm.Commit); err != nil {
			w.fatalf("%s merge: %v", m.name, err)
		}
	}
	w.members = append(w.members, j)
	w.afterEpoch()
}

// opExternalProposal has the external sender propose an Add or a Remove,
// which a member commits.
func (w *scnWorld) opExternalProposal() {
	gc := w.members[0].g.GroupContext()
	sender := group.ExternalSenderKey{Index: 0, SigningKey: w.extKey}
	joiners := map[string]*scnMember{}
	var p *wire.Proposal
	if w.rng.IntN(2) == 0 && len(w.members) > scnMinMembers {
		p = scnRemoveProp(w.pick().g.OwnLeafIndex())
		w.stats["external-remove"]++
	} else {
		j := w.newJoiner()
		joiners[string(j.kp.LeafNode.SignatureKey)] = j
		p = scnAddProp(j.kp)
		w.stats["external-add"]++
	}
	msg, err := group.NewExternalProposal(w.suite, gc.GroupID, gc.Epoch, sender, p)
	if err != nil {
		w.fatalf("external proposal: %v", err)
	}
	for _, m := range w.members {
		w.maybeReload(m, 8)
		if _, err := m.g.Process(w.ctx, msg); err != nil {
			w.fatalf("%s processing the external proposal: %v", m.name, err)
		}
	}
	c := w.pick()
	for p.Remove != nil && c.g.OwnLeafIndex() == treemath.LeafIndex(p.Remove.Removed) {
		c = w.pick()
	}
	w.commit(c, scnCommitWith(w.ctx, nil), joiners)
}

func (w *scnWorld) opGCE() {
	p := w.pick()
	exts := p.g.GroupContext().Extensions
	if e := wire.FindExtension(exts, wire.ExtensionTypeRequiredCapabilities); e != nil {
		exts = slices.DeleteFunc(exts, func(x wire.Extension) bool { return x.ExtensionType == wire.ExtensionTypeRequiredCapabilities })
	} else {
		exts = append(exts, wire.RequiredCapabilitiesExtension(&wire.RequiredCapabilities{
			ExtensionTypes: []wire.ExtensionType{}, ProposalTypes: []wire.ProposalType{},
			CredentialTypes: []wire.CredentialType{wire.CredentialTypeBasic},
		}))
	}
	msg, _, err := p.g.ProposeGroupContextExtensions(w.ctx, exts)
	if err != nil {
		w.fatalf("propose gce: %v", err)
	}
	w.broadcast(p, msg)
	w.commit(w.pick(), scnCommitWith(w.ctx, nil), nil)
	w.stats["gce"]++
}

// opReInit proposes and commits a ReInit; one member creates the new group
// (Group.ReInit) and the others join it with their old group as
// predecessor, each from its own backend.
func (w *scnWorld) opReInit() {
	p := w.pick()
	oldID := w.groupID()
	newID := fmt.Appendf(nil, "group-%d-%d", w.seed, w.groupGen+1)
	msg, _, err := p.g.ProposeReInit(w.ctx, newID, w.suite, p.g.GroupContext().Extensions)
	if err != nil {
		w.fatalf("propose reinit: %v", err)
	}
	w.broadcast(p, msg)
	w.commit(w.pick(), scnCommitWith(w.ctx, nil), nil) // reloads everyone
	for _, m := range w.members {
		if m.g.Status() != group.StatusReInit {
			w.fatalf("%s not ended by ReInit (%v)", m.name, m.g.Status())
		}
		if _, err := m.g.Protect(w.ctx, []byte("x"), nil); !errors.Is(err, group.ErrInactive) {
			w.fatalf("sending after ReInit: %v", err)
		}
	}
	creator := w.pick()
	var kps []*wire.KeyPackage
	for _, m := range w.members {
		if m != creator {
			m.lastKP = w.rng.IntN(4) == 0
			kps = append(kps, m.keyPackage(w.t, m.lastKP))
		}
	}
	ng, res, err := creator.g.ReInit(w.ctx, creator.cfg, kps)
	if err != nil {
		w.fatalf("reinit: %v", err)
	}
	if !bytes.Equal(ng.GroupID(), newID) {
		w.fatalf("reinitialized group has id %q", ng.GroupID())
	}
	for _, m := range w.members {
		if m == creator {
			continue
		}
		opts := &engine.JoinOptions{Predecessor: m.g}
		if !creator.cfg.RatchetTreeExtension {
			opts.RatchetTree = ng.RatchetTreeBytes()
		}
		g, err := engine.JoinGroup(w.ctx, m.store, res.Welcome, m.cfg, opts)
		if err != nil {
			w.fatalf("%s joining the reinitialized group: %v", m.name, err)
		}
		m.g = g
	}
	creator.g = ng
	for _, m := range w.members {
		m.joinEpoch = m.g.Epoch()
		// The old group stays stored, ended; some members delete it.
		if w.rng.IntN(2) == 0 {
			if err := engine.DeleteGroup(w.ctx, m.store, oldID); err != nil {
				w.fatalf("%s deletes the old group: %v", m.name, err)
			}
		} else if old, err := engine.LoadGroup(w.ctx, m.store, oldID, m.cfg); err != nil || old.Status() != group.StatusReInit {
			w.fatalf("%s: old group after ReInit: %v", m.name, err)
		}
	}
	w.groupGen++
	w.late = nil // messages of the old group are of no use
	w.removed = nil
	w.afterEpoch()
	w.stats["reinit"]++
}

func runEngineScenario(t *testing.T, suite ciphersuite.ID, seed uint64, epochs int) map[string]int {
	return runScenarioWith(t, nil, suite, seed, epochs)
}

// TestEngineScenarioJetStore runs the scenario with every client's state in
// jetstore on one embedded server, each client's Store reopened on a new
// connection before each of its reloads, which come before every operation.
func TestEngineScenarioJetStore(t *testing.T) {
	epochs := 25
	if testing.Short() {
		epochs = 8
	}
	if n, err := strconv.Atoi(os.Getenv("MLS_JETSTORE_EPOCHS")); err == nil {
		epochs = n
	}
	start := time.Now()
	stats := runScenarioWith(t, newJetEnv(t), 1, 4, epochs)
	t.Logf("%v in %v", stats, time.Since(start).Round(time.Millisecond))
}

// TestEngineScenarioRealServer is the same against a nats-server process
// built from the module and started by the test, as CI has no server
// running.
func TestEngineScenarioRealServer(t *testing.T) {
	epochs := 12
	if testing.Short() {
		epochs = 4
	}
	start := time.Now()
	stats := runScenarioWith(t, newJetEnvProcess(t), 3, 5, epochs)
	t.Logf("%v in %v", stats, time.Since(start).Round(time.Millisecond))
}

func runScenarioWith(t *testing.T, jet *jetEnv, suite ciphersuite.ID, seed uint64, epochs int) map[string]int {
	w := &scnWorld{jet: jet,
		t: t, ctx: context.Background(), rng: rand.New(rand.NewPCG(seed, 77)), suite: suite, seed: seed,
		psks:  map[string]secret.Secret{"shared": secret.Copy([]byte("a shared external psk"))},
		stats: map[string]int{},
	}
	s, err := ciphersuite.Lookup(suite)
	if err != nil {
		t.Fatal(err)
	}
	if w.extKey, err = s.GenerateSigningKey(newRand(seed + 5)); err != nil {
		t.Fatal(err)
	}
	creator := w.newClient()
	cfg := *creator.cfg
	cfg.GroupID = fmt.Appendf(nil, "group-%d-0", seed)
	cfg.ExternalSenders = []wire.ExternalSender{{SignatureKey: w.extKey.PublicKey(),
		Credential: wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: []byte("server")}}}
	if creator.g, err = engine.NewGroup(w.ctx, creator.store, creator.signer, &cfg, creator.cred); err != nil {
		t.Fatal(err)
	}
	w.members = []*scnMember{creator}
	for len(w.members) < scnMinMembers {
		w.opAdd()
	}
	for w.stats["epochs"] < epochs {
		// Every operation starts from the stored state of every member.
		for _, m := range w.members {
			w.reload(m)
		}
		w.sendApps()
		n := len(w.members)
		r := w.rng.IntN(100)
		switch {
		case w.stats["reinit"] == 0 && w.stats["epochs"] >= epochs/2:
			w.opReInit() // at least once per scenario
		case n <= scnMinMembers && r < 60, n < scnMaxMembers && r < 20:
			w.opAdd()
		case n > scnMinMembers && r < 35:
			w.opRemove()
		case r < 50:
			w.opUpdate()
		case r < 60:
			w.opPSK()
		case r < 72 && n < scnMaxMembers:
			w.opExternalJoin()
		case r < 82 && n < scnMaxMembers:
			w.opExternalProposal()
		case r < 88:
			w.opGCE()
		case r < 89:
			w.opReInit()
		default:
			w.opUpdate()
		}
	}
	w.deliverApps(true)
	w.deliverReplays(true)
	for _, m := range w.members {
		w.reload(m)
		w.checkStored(m)
	}
	w.checkAgreement()
	for _, l := range w.lossy {
		w.stats["lost-ack"] += l.Faults()
	}
	return w.stats
}

func TestEngineScenario(t *testing.T) {
	type run struct {
		suite  ciphersuite.ID
		seed   uint64
		epochs int
	}
	runs := []run{{1, 1, 300}, {1, 2, 300}, {3, 3, 150}}
	if testing.Short() {
		runs = []run{{1, 1, 40}}
	}
	if os.Getenv("MLS_SOAK") != "" {
		runs = nil
		for seed := uint64(1); seed <= 8; seed++ {
			runs = append(runs, run{ciphersuite.ID(1 + seed%7), seed, 1000})
		}
	}
	for _, r := range runs {
		t.Run(fmt.Sprintf("suite%d/seed%d", r.suite, r.seed), func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			stats := runEngineScenario(t, r.suite, r.seed, r.epochs)
			t.Logf("%v in %v", stats, time.Since(start).Round(time.Millisecond))
			if testing.Short() {
				return
			}
			for _, k := range []string{"add", "remove", "update", "self-update", "psk-external", "psk-resumption",
				"external-join", "resync", "rejoin", "external-add", "external-remove", "gce", "reinit",
				"last-resort-join", "stale-merge", "app-late", "app-expired", "app-replay-late", "reload", "store-check", "lost-ack"} {
				if stats[k] == 0 {
					t.Errorf("operation %s never happened", k)
				}
			}
		})
	}
}
