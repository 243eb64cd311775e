package group_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// The scenario test drives groups of 3 to 20 members through hundreds of
// epochs with a seeded random mix of operations, and checks after every
// commit that all members agree on the epoch authenticator, that every
// application message decrypts exactly once for every member that should
// be able to read it (late ones from retained past epochs included), and
// that each member's persisted records (applied from TakeChanges into a
// per-member store) always equal its full state and restore it.

const (
	scenarioMinMembers = 3
	scenarioMaxMembers = 20
	scenarioPastEpochs = 3
)

type member struct {
	*client
	store     map[group.RecordKey][]byte
	joinEpoch uint64
	kp        *group.KeyPackageBundle // while joining
}

type appMsg struct {
	msg        *wire.MLSMessage
	epoch      uint64
	data       []byte
	recipients []*member
}

type world struct {
	t        *testing.T
	rng      *rand.Rand
	suite    ciphersuite.ID
	members  []*member
	extKey   *ciphersuite.SigningKey
	extCred  wire.Credential
	psks     map[string]secret.Secret
	late     []*appMsg
	nextID   int
	seed     uint64
	groupGen int
	stats    map[string]int
}

func (w *world) newClient() *member {
	w.nextID++
	name := "m" + strconv.Itoa(w.nextID)
	c := newClient(w.t, w.suite, name, w.seed*1000+uint64(w.nextID))
	w.configure(c)
	return &member{client: c, store: map[group.RecordKey][]byte{}}
}

func (w *world) configure(c *client) {
	c.cfg.MaxPastEpochs = scenarioPastEpochs
	c.cfg.NumberOfResumptionPSKs = 4
	c.cfg.OutOfOrderTolerance = 64
	c.cfg.PSKs = group.ExternalPSKs(w.psks)
	c.cfg.EncryptHandshake = w.rng.IntN(2) == 0
	c.cfg.RatchetTreeExtension = w.rng.IntN(2) == 0
	c.cfg.PaddingBlock = []int{0, 16, 64}[w.rng.IntN(3)]
}

func (w *world) fatalf(format string, args ...any) {
	w.t.Helper()
	w.t.Fatalf("seed %d: "+format, append([]any{w.seed}, args...)...)
}

func (w *world) pick() *member { return w.members[w.rng.IntN(len(w.members))] }

func (w *world) pickOther(not ...*member) *member {
	for {
		m := w.pick()
		if !slices.Contains(not, m) {
			return m
		}
	}
}

func (w *world) index(m *member) int { return slices.Index(w.members, m) }

// persist applies a member's pending changes to its store, as a storage
// layer would, and checks the deletions never name live records.
func (w *world) persist(m *member) {
	ch := m.g.TakeChanges()
	for _, r := range ch.Puts {
		if r.Scope != group.GroupScope {
			continue
		}
		k := r.Key()
		if _, ok := m.store[k]; ok && r.Class == group.KeyMaterial {
			w.fatalf("%s: key material %s written twice", m.name, r.Name)
		}
		m.store[k] = r.Value
	}
	for _, k := range ch.Deletes {
		if k.Scope == group.GroupScope {
			delete(m.store, k)
		}
	}
}

func (w *world) persistAll() {
	for _, m := range w.members {
		w.persist(m)
	}
}

// checkStore compares a member's store with its full records, then reloads
// the member from the store.
func (w *world) checkStore(m *member) {
	w.persist(m)
	recs := m.g.Records()
	if len(recs) != len(m.store) {
		var missing, extra []string
		have := map[group.RecordKey]bool{}
		for _, r := range recs {
			have[r.Key()] = true
			if _, ok := m.store[r.Key()]; !ok {
				missing = append(missing, r.Name)
			}
		}
		for k := range m.store {
			if !have[k] {
				extra = append(extra, k.Name)
			}
		}
		w.fatalf("%s: store has %d records, state %d; missing %v, extra %v", m.name, len(m.store), len(recs), missing, extra)
	}
	var stored []group.Record
	for _, r := range recs {
		v, ok := m.store[r.Key()]
		if !ok || !bytes.Equal(v, r.Value) {
			w.fatalf("%s: stored record %s differs", m.name, r.Name)
		}
		stored = append(stored, group.Record{Scope: r.Scope, Class: r.Class, Name: r.Name, Value: v})
	}
	g, err := group.Restore(m.cfg, m.id.SigningKey, stored)
	if err != nil {
		w.fatalf("%s: restore: %v", m.name, err)
	}
	if fingerprint(g) != fingerprint(m.g) {
		w.fatalf("%s: restored state differs", m.name)
	}
	m.g = g
	w.stats["reload"]++
}

func (w *world) checkAgreement() {
	w.t.Helper()
	var want []byte
	for i, m := range w.members {
		ea := m.g.EpochAuthenticator()
		if i == 0 {
			want = slices.Clone(ea.Bytes())
		} else if !bytes.Equal(ea.Bytes(), want) || m.g.Epoch() != w.members[0].g.Epoch() {
			w.fatalf("%s disagrees on epoch %d", m.name, m.g.Epoch())
		}
		if m.g.MemberCount() != len(w.members) {
			w.fatalf("%s sees %d members, world has %d", m.name, m.g.MemberCount(), len(w.members))
		}
	}
}

// broadcast delivers a handshake message to every member but the sender.
func (w *world) broadcast(from *member, msg *wire.MLSMessage) {
	for _, m := range w.members {
		if m == from {
			continue
		}
		rm, err := m.g.Process(msg)
		if err != nil {
			w.fatalf("%s processing from %v: %v", m.name, from, err)
		}
		if rm.Proposal == nil {
			w.fatalf("%s: expected a proposal", m.name)
		}
	}
}

// commit has c commit (with opts), delivers the commit, merges it
// everywhere, and lets the new members join from the Welcome.
func (w *world) commit(c *member, opts *group.CommitOptions, joiners map[string]*member) {
	w.t.Helper()
	res, err := c.g.Commit(opts)
	if err != nil {
		w.fatalf("%s commit: %v", c.name, err)
	}
	w.deliverCommit(c, res.Commit)
	if err := c.g.MergePendingCommit(); err != nil {
		w.fatalf("merge: %v", err)
	}
	if res.Welcome != nil {
		w.welcome(c, res.Welcome.Welcome, res.Staged.Added(), joiners)
	}
	w.afterEpoch()
}

func (w *world) welcome(c *member, wm *wire.Welcome, added []group.AddedMember, joiners map[string]*member) {
	for _, a := range added {
		j := joiners[string(a.KeyPackage.LeafNode.SignatureKey)]
		if j == nil {
			w.fatalf("unknown joiner")
		}
		var opts *group.JoinOptions
		if !c.cfg.RatchetTreeExtension {
			opts = &group.JoinOptions{RatchetTree: c.g.RatchetTreeBytes()}
		}
		var err error
		if j.g, err = group.Join(j.cfg, wm, j.kp, opts); err != nil {
			w.fatalf("%s join: %v", j.name, err)
		}
		j.joinEpoch = j.g.Epoch()
		w.members = append(w.members, j)
		w.stats["welcome-join"]++
	}
}

// deliverCommit has every member but the committer process and merge a
// commit; members it removes leave the world.
func (w *world) deliverCommit(from *member, msg *wire.MLSMessage) {
	var stay []*member
	for _, m := range w.members {
		if m == from {
			stay = append(stay, m)
			continue
		}
		before := fingerprint(m.g)
		rm, err := m.g.Process(msg)
		if err != nil {
			w.fatalf("%s processing commit of %s: %v", m.name, from.name, err)
		}
		if rm.Commit == nil {
			w.fatalf("%s: expected a commit", m.name)
		}
		if msg.WireFormat == wire.WireFormatPublicMessage && w.rng.IntN(10) == 0 && fingerprint(m.g) != before {
			w.fatalf("staging changed the state")
		}
		if err := m.g.MergeStagedCommit(rm.Commit); err != nil {
			w.fatalf("%s merge: %v", m.name, err)
		}
		if rm.Commit.RemovesSelf() {
			if m.g.Status() != group.StatusRemoved {
				w.fatalf("removed member still active")
			}
			w.stats["removed"]++
			continue
		}
		stay = append(stay, m)
	}
	w.members = stay
}

func (w *world) afterEpoch() {
	w.checkAgreement()
	w.stats["epochs"]++
	w.persistAll()
	if w.rng.IntN(8) == 0 {
		w.checkStore(w.pick())
	}
}

// newJoiner is a prospective member with a fresh key package.
func (w *world) newJoiner() *member {
	m := w.newClient()
	m.kp = m.keyPackage(w.t, w.suite)
	return m
}

// --- application messages ---

func (w *world) sendApps() {
	n := w.rng.IntN(4)
	for range n {
		s := w.pick()
		data := []byte(fmt.Sprintf("%s says %d in %d", s.name, w.rng.Int(), s.g.Epoch()))
		msg, err := s.g.Protect(data, []byte(s.name))
		if err != nil {
			w.fatalf("%s protect: %v", s.name, err)
		}
		var rcpt []*member
		for _, m := range w.members {
			if m != s {
				rcpt = append(rcpt, m)
			}
		}
		w.late = append(w.late, &appMsg{msg: msg, epoch: s.g.Epoch(), data: data, recipients: rcpt})
		w.stats["app-sent"]++
	}
	w.deliverApps(false)
}

// deliverApps delivers some (all, with flush) pending application
// messages, each to some of its remaining recipients, in random order.
func (w *world) deliverApps(flush bool) {
	w.rng.Shuffle(len(w.late), func(i, j int) { w.late[i], w.late[j] = w.late[j], w.late[i] })
	var keep []*appMsg
	for _, am := range w.late {
		var left []*member
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

func (w *world) deliverApp(am *appMsg, r *member) {
	cur := r.g.Epoch()
	readable := am.epoch == cur || (am.epoch < cur && cur-am.epoch <= scenarioPastEpochs && am.epoch >= r.joinEpoch)
	before := fingerprint(r.g)
	rm, err := r.g.Process(am.msg)
	if !readable {
		if !errors.Is(err, group.ErrWrongEpoch) {
			w.fatalf("%s: message of epoch %d in epoch %d: %v", r.name, am.epoch, cur, err)
		}
		if fingerprint(r.g) != before {
			w.fatalf("%s: rejected message changed the state", r.name)
		}
		w.stats["app-expired"]++
		return
	}
	if err != nil {
		w.fatalf("%s: message of epoch %d in epoch %d: %v", r.name, am.epoch, cur, err)
	}
	if !bytes.Equal(rm.ApplicationData, am.data) {
		w.fatalf("%s: wrong plaintext", r.name)
	}
	if am.epoch < cur {
		w.stats["app-late"]++
	}
	w.stats["app-received"]++
	before = fingerprint(r.g)
	if _, err := r.g.Process(am.msg); !errors.Is(err, group.ErrReplay) {
		w.fatalf("%s: second decryption: %v", r.name, err)
	}
	if fingerprint(r.g) != before {
		w.fatalf("%s: replay changed the state", r.name)
	}
}

// --- operations ---

func (w *world) opAdd() {
	n := 1 + w.rng.IntN(min(3, scenarioMaxMembers-len(w.members)))
	c := w.pick()
	joiners := map[string]*member{}
	var byValue []*wire.Proposal
	for range n {
		j := w.newJoiner()
		joiners[string(j.kp.KeyPackage.LeafNode.SignatureKey)] = j
		if w.rng.IntN(2) == 0 {
			p := w.pick()
			msg, _, err := p.g.ProposeAdd(j.kp.KeyPackage)
			if err != nil {
				w.fatalf("propose add: %v", err)
			}
			w.broadcast(p, msg)
		} else {
			byValue = append(byValue, addProposal(j.kp))
		}
	}
	w.commit(c, &group.CommitOptions{Proposals: byValue, ForcePath: w.rng.IntN(2) == 0}, joiners)
	w.stats["add"]++
}

func (w *world) opRemove() {
	target := w.pick()
	c := w.pickOther(target)
	switch w.rng.IntN(3) {
	case 0: // by value
		w.commit(c, &group.CommitOptions{Proposals: []*wire.Proposal{removeProposal(target.g.OwnLeafIndex())}}, nil)
	case 1: // the target leaves
		msg, _, err := target.g.Leave()
		if err != nil {
			w.fatalf("leave: %v", err)
		}
		w.broadcast(target, msg)
		w.commit(c, nil, nil)
	default: // proposed by a third member
		p := w.pickOther(target)
		msg, _, err := p.g.ProposeRemove(target.g.OwnLeafIndex())
		if err != nil {
			w.fatalf("propose remove: %v", err)
		}
		w.broadcast(p, msg)
		w.commit(c, nil, nil)
	}
	w.stats["remove"]++
}

func (w *world) opUpdate() {
	if w.rng.IntN(3) == 0 {
		w.commit(w.pick(), &group.CommitOptions{ForcePath: true}, nil) // empty commit
		w.stats["self-update"]++
		return
	}
	for range 1 + w.rng.IntN(2) {
		p := w.pick()
		msg, _, err := p.g.ProposeUpdate(nil)
		if err != nil {
			w.fatalf("propose update: %v", err)
		}
		w.broadcast(p, msg)
	}
	w.commit(w.pick(), nil, nil) // a committer's own Update is left out
	w.stats["update"]++
}

func (w *world) opPSK() {
	p := w.pick()
	var msg *wire.MLSMessage
	var err error
	if w.rng.IntN(2) == 0 {
		msg, _, err = p.g.ProposeExternalPSK([]byte("shared"))
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
		msg, _, err = p.g.ProposeResumptionPSK(lo + uint64(w.rng.IntN(int(cur-lo+1))))
		w.stats["psk-resumption"]++
	}
	if err != nil {
		w.fatalf("propose psk: %v", err)
	}
	w.broadcast(p, msg)
	w.commit(w.pick(), &group.CommitOptions{ForcePath: w.rng.IntN(2) == 0}, nil)
}

func (w *world) opExternalJoin() {
	src := w.pick()
	withTree := w.rng.IntN(2) == 0
	gi, err := src.g.GroupInfo(&group.GroupInfoOptions{RatchetTree: withTree})
	if err != nil {
		w.fatalf("group info: %v", err)
	}
	opts := &group.ExternalJoinOptions{}
	if !withTree {
		opts.RatchetTree = src.g.RatchetTreeBytes()
	}
	var j *member
	var old *member
	if w.rng.IntN(3) == 0 && len(w.members) > scenarioMinMembers {
		// Resync: a member that lost its state rejoins with a new signing
		// key and removes its old leaf.
		old = w.pickOther(src)
		j = w.newClient()
		j.id.Credential = old.id.Credential
		j.name = old.name + "'"
		leaf := old.g.OwnLeafIndex()
		opts.Resync = &leaf
		w.stats["resync"]++
	} else {
		j = w.newClient()
		w.stats["external-join"]++
	}
	if w.rng.IntN(3) == 0 {
		opts.PSKs = []wire.PreSharedKeyID{{PSKType: wire.PSKTypeExternal, PSKID: []byte("shared")}}
	}
	g, msg, err := group.JoinExternal(j.cfg, gi.GroupInfo, j.id, opts)
	if err != nil {
		w.fatalf("external join: %v", err)
	}
	j.g = g
	j.joinEpoch = g.Epoch()
	if old != nil {
		w.members = slices.DeleteFunc(w.members, func(m *member) bool { return m == old })
		old.g.TakeChanges()
	}
	for _, m := range w.members {
		rm, err := m.g.Process(msg)
		if err != nil {
			w.fatalf("%s processing external commit: %v", m.name, err)
		}
		if !rm.Commit.IsExternal() {
			w.fatalf("not external")
		}
		if err := m.g.MergeStagedCommit(rm.Commit); err != nil {
			w.fatalf("merge: %v", err)
		}
	}
	w.members = append(w.members, j)
	w.afterEpoch()
}

func (w *world) opExternalProposal() {
	ctx := w.members[0].g.GroupContext()
	sender := group.ExternalSenderKey{Index: 0, SigningKey: w.extKey}
	joiners := map[string]*member{}
	var p *wire.Proposal
	if w.rng.IntN(2) == 0 && len(w.members) > scenarioMinMembers {
		p = removeProposal(w.pick().g.OwnLeafIndex())
		w.stats["external-remove"]++
	} else {
		j := w.newJoiner()
		joiners[string(j.kp.KeyPackage.LeafNode.SignatureKey)] = j
		p = addProposal(j.kp)
		w.stats["external-add"]++
	}
	msg, err := group.NewExternalProposal(w.suite, ctx.GroupID, ctx.Epoch, sender, p)
	if err != nil {
		w.fatalf("external proposal: %v", err)
	}
	for _, m := range w.members {
		if _, err := m.g.Process(msg); err != nil {
			w.fatalf("%s processing external proposal: %v", m.name, err)
		}
	}
	c := w.pick()
	if p.Remove != nil {
		for c.g.OwnLeafIndex() == treemath.LeafIndex(p.Remove.Removed) {
			c = w.pick()
		}
	}
	w.commit(c, nil, joiners)
}

func (w *world) opNewMemberProposal() {
	ctx := w.members[0].g.GroupContext()
	j := w.newJoiner()
	msg, err := group.NewMemberAddProposal(ctx.GroupID, ctx.Epoch, j.kp)
	if err != nil {
		w.fatalf("new member proposal: %v", err)
	}
	for _, m := range w.members {
		if _, err := m.g.Process(msg); err != nil {
			w.fatalf("%s processing new member proposal: %v", m.name, err)
		}
	}
	w.commit(w.pick(), nil, map[string]*member{string(j.kp.KeyPackage.LeafNode.SignatureKey): j})
	w.stats["new-member-proposal"]++
}

func (w *world) opGCE() {
	p := w.pick()
	exts := p.g.Extensions()
	if e := wire.FindExtension(exts, wire.ExtensionTypeRequiredCapabilities); e != nil {
		exts = slices.DeleteFunc(exts, func(x wire.Extension) bool { return x.ExtensionType == wire.ExtensionTypeRequiredCapabilities })
	} else {
		exts = append(exts, wire.RequiredCapabilitiesExtension(&wire.RequiredCapabilities{
			ExtensionTypes: []wire.ExtensionType{}, ProposalTypes: []wire.ProposalType{},
			CredentialTypes: []wire.CredentialType{wire.CredentialTypeBasic},
		}))
	}
	msg, _, err := p.g.ProposeGroupContextExtensions(exts)
	if err != nil {
		w.fatalf("propose gce: %v", err)
	}
	w.broadcast(p, msg)
	w.commit(w.pick(), nil, nil)
	w.stats["gce"]++
}

func (w *world) opReInit() {
	p := w.pick()
	newID := []byte(fmt.Sprintf("group-%d-%d", w.seed, w.groupGen+1))
	msg, _, err := p.g.ProposeReInit(newID, w.suite, p.g.Extensions())
	if err != nil {
		w.fatalf("propose reinit: %v", err)
	}
	w.broadcast(p, msg)
	w.commit(w.pick(), nil, nil)
	for _, m := range w.members {
		if m.g.Status() != group.StatusReInit {
			w.fatalf("%s not ended by ReInit", m.name)
		}
		if _, err := m.g.Protect([]byte("x"), nil); !errors.Is(err, group.ErrInactive) {
			w.fatalf("sending after ReInit: %v", err)
		}
	}
	// One member creates the new group; the others join with new key
	// packages.
	creator := w.pick()
	var kps []*wire.KeyPackage
	bundles := map[string]*group.KeyPackageBundle{}
	for _, m := range w.members {
		if m == creator {
			continue
		}
		kp := m.keyPackage(w.t, w.suite)
		kps = append(kps, kp.KeyPackage)
		bundles[m.name] = kp
	}
	ng, res, err := creator.g.ReInit(creator.cfg, creator.id, kps)
	if err != nil {
		w.fatalf("reinit: %v", err)
	}
	olds := map[*member]*group.Group{}
	for _, m := range w.members {
		olds[m] = m.g
	}
	for _, m := range w.members {
		if m == creator {
			continue
		}
		opts := &group.JoinOptions{Predecessor: olds[m]}
		if !creator.cfg.RatchetTreeExtension {
			opts.RatchetTree = ng.RatchetTreeBytes()
		}
		g, err := group.Join(m.cfg, res.Welcome.Welcome, bundles[m.name], opts)
		if err != nil {
			w.fatalf("%s joining the reinitialized group: %v", m.name, err)
		}
		m.g = g
	}
	creator.g = ng
	w.groupGen++
	w.late = nil // messages of the old group are of no use
	for _, m := range w.members {
		m.store = map[group.RecordKey][]byte{}
		m.joinEpoch = m.g.Epoch()
	}
	w.afterEpoch()
	w.stats["reinit"]++
}

func runScenario(t *testing.T, suite ciphersuite.ID, seed uint64, epochs int) map[string]int {
	w := &world{
		t: t, rng: rand.New(rand.NewPCG(seed, 99)), suite: suite, seed: seed,
		psks:  map[string]secret.Secret{"shared": secret.Copy([]byte("a shared external psk"))},
		stats: map[string]int{},
	}
	s, _ := ciphersuite.Lookup(suite)
	var err error
	if w.extKey, err = s.GenerateSigningKey(newRand(seed + 5)); err != nil {
		t.Fatal(err)
	}
	w.extCred = wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: []byte("server")}
	creator := w.newClient()
	creator.cfg.ExternalSenders = []wire.ExternalSender{{SignatureKey: w.extKey.PublicKey(), Credential: w.extCred}}
	if creator.g, err = group.Create(creator.cfg, suite, creator.id, []byte(fmt.Sprintf("group-%d-0", seed)), nil); err != nil {
		t.Fatal(err)
	}
	w.members = []*member{creator}
	for len(w.members) < scenarioMinMembers {
		w.opAdd()
	}
	for w.stats["epochs"] < epochs {
		w.sendApps()
		n := len(w.members)
		r := w.rng.IntN(100)
		switch {
		case n <= scenarioMinMembers && r < 60, n < scenarioMaxMembers && r < 20:
			w.opAdd()
		case n > scenarioMinMembers && r < 35:
			w.opRemove()
		case r < 50:
			w.opUpdate()
		case r < 60:
			w.opPSK()
		case r < 70 && n < scenarioMaxMembers:
			w.opExternalJoin()
		case r < 78 && n < scenarioMaxMembers:
			w.opExternalProposal()
		case r < 83 && n < scenarioMaxMembers:
			w.opNewMemberProposal()
		case r < 88:
			w.opGCE()
		case r < 89:
			w.opReInit()
		default:
			w.opUpdate()
		}
	}
	w.deliverApps(true)
	for _, m := range w.members {
		w.checkStore(m)
	}
	return w.stats
}

func TestScenario(t *testing.T) {
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
			stats := runScenario(t, r.suite, r.seed, r.epochs)
			t.Logf("%v", stats)
			for _, k := range []string{"add", "remove", "update", "psk-external", "psk-resumption", "external-join", "app-late", "app-expired", "reload"} {
				if stats[k] == 0 && !testing.Short() {
					t.Errorf("operation %s never happened", k)
				}
			}
		})
	}
}
