package group_test

import (
	"bytes"
	"errors"
	"github.com/mlsengine/mlsengine/storage"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/wire"
)

const suite1 = ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519

// newGroupOf creates a group of the given clients, the first one creating
// it, everyone joined and in agreement.
func newGroupOf(t *testing.T, cs ...*client) {
	t.Helper()
	var err error
	if cs[0].g, err = group.Create(cs[0].cfg, suite1, cs[0].id, nil, nil); err != nil {
		t.Fatal(err)
	}
	if len(cs) == 1 {
		return
	}
	var props []*wire.Proposal
	kps := map[*client]*group.KeyPackageBundle{}
	for _, c := range cs[1:] {
		kps[c] = c.keyPackage(t, suite1)
		props = append(props, addProposal(kps[c]))
	}
	res, err := cs[0].g.Commit(&group.CommitOptions{Proposals: props})
	if err != nil {
		t.Fatal(err)
	}
	if err := cs[0].g.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs[1:] {
		if c.g, err = group.Join(c.cfg, res.Welcome.Welcome, kps[c], &group.JoinOptions{RatchetTree: cs[0].g.RatchetTreeBytes()}); err != nil {
			t.Fatal(err)
		}
	}
	mustEqualAuthenticators(t, cs...)
}

// commitAll has c commit and everyone else process and merge.
func commitAll(t *testing.T, c *client, opts *group.CommitOptions, others ...*client) *group.CommitResult {
	t.Helper()
	res, err := c.g.Commit(opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range others {
		rm, err := o.g.Process(res.Commit)
		if err != nil {
			t.Fatalf("%s: %v", o.name, err)
		}
		if err := o.g.MergeStagedCommit(rm.Commit); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.g.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	return res
}

func TestExportSecretAgrees(t *testing.T) {
	a, b := newClient(t, suite1, "a", 1), newClient(t, suite1, "b", 2)
	newGroupOf(t, a, b)
	x, err := a.g.ExportSecret("label", []byte("ctx"), 42)
	if err != nil {
		t.Fatal(err)
	}
	y, _ := b.g.ExportSecret("label", []byte("ctx"), 42)
	z, _ := b.g.ExportSecret("label", []byte("other"), 42)
	if x.Len() != 42 || !x.Equal(y) || x.Equal(z) {
		t.Fatal("exporter")
	}
}

func TestPendingCommitLifecycle(t *testing.T) {
	a, b, c := newClient(t, suite1, "a", 1), newClient(t, suite1, "b", 2), newClient(t, suite1, "c", 3)
	newGroupOf(t, a, b, c)
	// Clear: nothing changes.
	a.g.TakeChanges()
	before := fingerprint(a.g)
	if _, err := a.g.Commit(&group.CommitOptions{ForcePath: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.g.Commit(nil); !errors.Is(err, group.ErrPendingCommit) {
		t.Fatalf("second commit: %v", err)
	}
	if err := a.g.ClearPendingCommit(); err != nil {
		t.Fatal(err)
	}
	if fingerprint(a.g) != before {
		t.Fatal("clear left state behind")
	}
	ch := a.g.TakeChanges()
	if len(ch.Puts) != 0 {
		t.Fatalf("clear left records: %v", ch.Puts)
	}
	// A pending commit survives a reload, and merges to the same epoch.
	res, err := a.g.Commit(&group.CommitOptions{ForcePath: true})
	if err != nil {
		t.Fatal(err)
	}
	g2, err := group.Restore(a.cfg, a.id.SigningKey, a.g.Records())
	if err != nil {
		t.Fatal(err)
	}
	a.g = g2
	for _, o := range []*client{b, c} {
		rm, err := o.g.Process(res.Commit)
		if err != nil {
			t.Fatal(err)
		}
		o.g.MergeStagedCommit(rm.Commit)
	}
	if err := a.g.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	mustEqualAuthenticators(t, a, b, c)
	// Another member's commit wins over a pending one.
	if _, err := a.g.Commit(&group.CommitOptions{ForcePath: true}); err != nil {
		t.Fatal(err)
	}
	res = commitAll(t, b, &group.CommitOptions{ForcePath: true}, c)
	rm, err := a.g.Process(res.Commit)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.g.MergeStagedCommit(rm.Commit); err != nil {
		t.Fatal(err)
	}
	if a.g.HasPendingCommit() {
		t.Fatal("pending commit survived")
	}
	mustEqualAuthenticators(t, a, b, c)
	// A staged commit cannot be merged twice or after the group moved.
	if err := a.g.MergeStagedCommit(rm.Commit); !errors.Is(err, group.ErrStaleCommit) {
		t.Fatalf("merging twice: %v", err)
	}
	// Own commit coming back.
	res2, _ := a.g.Commit(&group.CommitOptions{ForcePath: true})
	if _, err := a.g.Process(res2.Commit); err == nil {
		t.Fatal("processed own commit")
	}
}

func TestBranch(t *testing.T) {
	a, b, c := newClient(t, suite1, "a", 1), newClient(t, suite1, "b", 2), newClient(t, suite1, "c", 3)
	newGroupOf(t, a, b, c)
	bkp := b.keyPackage(t, suite1)
	ng, res, err := a.g.Branch(a.cfg, a.id, []byte("sub"), nil, []*wire.KeyPackage{bkp.KeyPackage})
	if err != nil {
		t.Fatal(err)
	}
	if ng.Epoch() != 1 || ng.MemberCount() != 2 {
		t.Fatalf("branch epoch %d, %d members", ng.Epoch(), ng.MemberCount())
	}
	bg, err := group.Join(b.cfg, res.Welcome.Welcome, bkp, &group.JoinOptions{RatchetTree: ng.RatchetTreeBytes(), Predecessor: b.g})
	if err != nil {
		t.Fatal(err)
	}
	x, y := ng.EpochAuthenticator(), bg.EpochAuthenticator()
	if !x.Equal(y) {
		t.Fatal("branch disagrees")
	}
	// A joiner without the PSK cannot join; one whose predecessor is not
	// the named group is refused.
	bkp2 := b.keyPackage(t, suite1)
	_, res, err = a.g.Branch(a.cfg, a.id, []byte("sub2"), nil, []*wire.KeyPackage{bkp2.KeyPackage})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := group.Join(b.cfg, res.Welcome.Welcome, bkp2, &group.JoinOptions{RatchetTree: ng.RatchetTreeBytes()}); !errors.Is(err, group.ErrUnknownPSK) {
		t.Fatalf("join without the resumption PSK: %v", err)
	}
}

func TestReInit(t *testing.T) {
	a, b := newClient(t, suite1, "a", 1), newClient(t, suite1, "b", 2)
	newGroupOf(t, a, b)
	suite3 := ciphersuite.MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519
	m, _, err := b.g.ProposeReInit([]byte("v2"), suite3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.g.Process(m); err != nil {
		t.Fatal(err)
	}
	res := commitAll(t, a, nil, b)
	if res.Staged.ReInit() == nil || a.g.Status() != group.StatusReInit || b.g.Status() != group.StatusReInit {
		t.Fatal("ReInit did not end the group")
	}
	if _, _, err := a.g.ProposeUpdate(nil); !errors.Is(err, group.ErrInactive) {
		t.Fatalf("proposing after ReInit: %v", err)
	}
	bkp, err := group.NewKeyPackage(suite3, b.id, b.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ng, cr, err := a.g.ReInit(a.cfg, a.id, []*wire.KeyPackage{bkp.KeyPackage})
	if err != nil {
		t.Fatal(err)
	}
	if ng.Suite().ID() != suite3 || string(ng.GroupID()) != "v2" {
		t.Fatal("new group parameters")
	}
	bg, err := group.Join(b.cfg, cr.Welcome.Welcome, bkp, &group.JoinOptions{RatchetTree: ng.RatchetTreeBytes(), Predecessor: b.g})
	if err != nil {
		t.Fatal(err)
	}
	x, y := ng.EpochAuthenticator(), bg.EpochAuthenticator()
	if !x.Equal(y) {
		t.Fatal("reinitialized group disagrees")
	}
}

func TestCustomProposal(t *testing.T) {
	const custom wire.ProposalType = 0xf00d
	mk := func(name string, seed uint64, supports bool) *client {
		c := newClient(t, suite1, name, seed)
		if supports {
			caps := group.DefaultCapabilities(suite1)
			caps.Proposals = append(caps.Proposals, custom)
			c.id.Capabilities = caps
		}
		return c
	}
	a, b := mk("a", 1, true), mk("b", 2, true)
	newGroupOf(t, a, b)
	msg, _, err := a.g.ProposeCustom(custom, []byte("body"))
	if err != nil {
		t.Fatal(err)
	}
	rm, err := b.g.Process(msg)
	if err != nil {
		t.Fatal(err)
	}
	if rm.Proposal.Proposal.ProposalType != custom || !bytes.Equal(rm.Proposal.Proposal.Custom, []byte("body")) {
		t.Fatal("custom proposal")
	}
	res := commitAll(t, b, nil, a)
	if ps := res.Staged.Proposals(); len(ps) != 1 || ps[0].Proposal.ProposalType != custom {
		t.Fatal("custom proposal not committed")
	}
	mustEqualAuthenticators(t, a, b)
	// With a member that does not support it, the commit is invalid.
	c := mk("c", 3, false)
	ckp := c.keyPackage(t, suite1)
	commitAll(t, a, &group.CommitOptions{Proposals: []*wire.Proposal{addProposal(ckp)}}, b)
	if _, err := a.g.Commit(&group.CommitOptions{Proposals: []*wire.Proposal{{ProposalType: custom, Custom: []byte{}}}}); !errors.Is(err, group.ErrUnsupported) {
		t.Fatalf("custom proposal with an unsupporting member: %v", err)
	}
}

func TestLastResortKeyPackage(t *testing.T) {
	a, b := newClient(t, suite1, "a", 1), newClient(t, suite1, "b", 2)
	if _, err := group.Create(a.cfg, suite1, a.id, nil, nil); err != nil {
		t.Fatal(err)
	}
	lr, err := group.NewKeyPackage(suite1, b.id, b.cfg, &group.KeyPackageOptions{LastResort: true})
	if err != nil {
		t.Fatal(err)
	}
	if !lr.LastResort() || group.ValidateKeyPackage(lr.KeyPackage, suite1, a.cfg) != nil {
		t.Fatal("last resort key package")
	}
	normal := b.keyPackage(t, suite1)
	for i, kp := range []*group.KeyPackageBundle{lr, lr, normal} {
		g, err := group.Create(a.cfg, suite1, a.id, []byte{byte(i)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := g.Commit(&group.CommitOptions{Proposals: []*wire.Proposal{addProposal(kp)}})
		if err != nil {
			t.Fatal(err)
		}
		g.MergePendingCommit()
		bg, err := group.Join(b.cfg, res.Welcome.Welcome, kp, &group.JoinOptions{RatchetTree: g.RatchetTreeBytes()})
		if err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
		ch := bg.TakeChanges()
		deleted := slices.ContainsFunc(ch.Deletes, func(k storage.Key) bool {
			return k.Scope.IsClient() && k.Class == storage.KeyMaterial && strings.HasPrefix(k.Name, "key-package/")
		})
		if deleted == kp.LastResort() {
			t.Fatalf("join %d: key package deleted %v, last resort %v", i, deleted, kp.LastResort())
		}
	}
	if _, err := group.Join(b.cfg, nil, normal, nil); !errors.Is(err, group.ErrInvalidArgument) {
		t.Fatalf("second use of a used key package: %v", err)
	}
}

func TestKeyPackageValidation(t *testing.T) {
	b := newClient(t, suite1, "b", 2)
	kp := b.keyPackage(t, suite1)
	cfg := &group.Config{Now: func() time.Time { return testNow }}
	if err := group.ValidateKeyPackage(kp.KeyPackage, suite1, cfg); err != nil {
		t.Fatal(err)
	}
	late := &group.Config{Now: func() time.Time { return testNow.Add(365 * 24 * time.Hour) }}
	if err := group.ValidateKeyPackage(kp.KeyPackage, suite1, late); !errors.Is(err, group.ErrKeyPackageExpired) || !errors.Is(err, group.ErrInvalidKeyPackage) {
		t.Fatalf("expired: %v", err)
	}
	if err := group.ValidateKeyPackage(kp.KeyPackage, 2, cfg); !errors.Is(err, group.ErrInvalidKeyPackage) {
		t.Fatalf("wrong suite: %v", err)
	}
	mod := func(f func(*wire.KeyPackage)) *wire.KeyPackage {
		k, err := wire.Unmarshal[wire.KeyPackage](kp.KeyPackage.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		f(k)
		k.ClearRaw()
		return k
	}
	for name, k := range map[string]*wire.KeyPackage{
		"signature":      mod(func(k *wire.KeyPackage) { k.Signature[0] ^= 1 }),
		"init is leaf":   mod(func(k *wire.KeyPackage) { k.InitKey = k.LeafNode.EncryptionKey }),
		"leaf signature": mod(func(k *wire.KeyPackage) { k.LeafNode.Signature[0] ^= 1 }),
		"leaf source":    mod(func(k *wire.KeyPackage) { k.LeafNode.LeafNodeSource = wire.LeafNodeSourceUpdate }),
	} {
		if err := group.ValidateKeyPackage(k, suite1, cfg); !errors.Is(err, group.ErrInvalidKeyPackage) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Records round trip.
	recs := kp.Records()
	r2, err := group.RestoreKeyPackageBundle(recs[0].Value, recs[1].Value, b.id.SigningKey)
	if err != nil || !bytes.Equal(r2.Ref(), kp.Ref()) {
		t.Fatalf("bundle round trip: %v", err)
	}
}

func TestWelcomeNegative(t *testing.T) {
	a, b, c := newClient(t, suite1, "a", 1), newClient(t, suite1, "b", 2), newClient(t, suite1, "c", 3)
	var err error
	if a.g, err = group.Create(a.cfg, suite1, a.id, nil, nil); err != nil {
		t.Fatal(err)
	}
	bkp, ckp := b.keyPackage(t, suite1), c.keyPackage(t, suite1)
	res, err := a.g.Commit(&group.CommitOptions{Proposals: []*wire.Proposal{addProposal(bkp)}})
	if err != nil {
		t.Fatal(err)
	}
	a.g.MergePendingCommit()
	tree := &group.JoinOptions{RatchetTree: a.g.RatchetTreeBytes()}
	if _, err := group.Join(c.cfg, res.Welcome.Welcome, ckp, tree); !errors.Is(err, group.ErrInvalidWelcome) {
		t.Fatalf("not for us: %v", err)
	}
	if _, err := group.Join(b.cfg, res.Welcome.Welcome, bkp, nil); !errors.Is(err, group.ErrInvalidTree) {
		t.Fatalf("no tree: %v", err)
	}
	bad := slices.Clone(a.g.RatchetTreeBytes())
	bad[len(bad)-3] ^= 1
	if _, err := group.Join(b.cfg, res.Welcome.Welcome, bkp, &group.JoinOptions{RatchetTree: bad}); err == nil {
		t.Fatal("tampered tree accepted")
	}
	w, err := wire.UnmarshalMLSWelcome(res.Welcome.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	w.EncryptedGroupInfo[5] ^= 1
	if _, err := group.Join(b.cfg, w, bkp, tree); !errors.Is(err, group.ErrInvalidWelcome) {
		t.Fatalf("tampered group info: %v", err)
	}
}

func TestExternalJoinNegative(t *testing.T) {
	a, b := newClient(t, suite1, "a", 1), newClient(t, suite1, "b", 2)
	newGroupOf(t, a)
	gi, err := a.g.GroupInfo(&group.GroupInfoOptions{RatchetTree: true, NoExternalPub: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := group.JoinExternal(b.cfg, gi.GroupInfo, b.id, nil); !errors.Is(err, group.ErrInvalidGroupInfo) {
		t.Fatalf("no external_pub: %v", err)
	}
	gi, _ = a.g.GroupInfo(&group.GroupInfoOptions{RatchetTree: true})
	gi2, _ := wire.UnmarshalMLSGroupInfo(gi.Bytes())
	gi2.Signature[0] ^= 1
	if _, _, err := group.JoinExternal(b.cfg, gi2, b.id, nil); !errors.Is(err, group.ErrBadSignature) {
		t.Fatalf("bad signature: %v", err)
	}
	// A valid external commit, tampered, is rejected without change.
	_, msg, err := group.JoinExternal(b.cfg, gi.GroupInfo, b.id, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := reencode(t, msg)
	m.PublicMessage.Auth.Signature[0] ^= 1
	reject(t, a, m, group.ErrBadSignature)
	rm, err := a.g.Process(msg)
	if err != nil || !rm.Commit.IsExternal() {
		t.Fatalf("external commit: %v", err)
	}
}

// TestForwardSecrecyDeletions checks the key material each step reports
// deleted, and what stays.
func TestForwardSecrecyDeletions(t *testing.T) {
	a, b := newClient(t, suite1, "a", 1), newClient(t, suite1, "b", 2)
	a.cfg.MaxPastEpochs, b.cfg.MaxPastEpochs = 2, 2
	a.cfg.NumberOfResumptionPSKs, b.cfg.NumberOfResumptionPSKs = 1, 1
	newGroupOf(t, a, b)
	a.g.TakeChanges()
	b.g.TakeChanges()
	store := map[string]bool{}
	for _, r := range b.g.Records() {
		if r.Key.Class == storage.KeyMaterial {
			store[r.Key.Name] = true
		}
	}
	apply := func(ch group.Changes) {
		for _, r := range ch.Puts {
			if r.Key.Class == storage.KeyMaterial && r.Key.Scope.IsGroup() {
				store[r.Key.Name] = true
			}
		}
		for name := range store {
			if ch.Deleted(storage.Key{Scope: storage.GroupScope(a.g.GroupID()), Class: storage.KeyMaterial, Name: name}) {
				delete(store, name)
			}
		}
	}
	count := func(prefix, suffix string) int {
		n := 0
		for name := range store {
			if strings.HasPrefix(name, prefix) && strings.HasSuffix(name, suffix) {
				n++
			}
		}
		return n
	}
	for e := 0; e < 6; e++ {
		epoch := b.g.Epoch()
		prefix := "epoch/" + itoa(epoch) + "/"
		leaf := itoa(uint64(a.g.OwnLeafIndex()))
		var ch group.Changes
		for i := range 2 {
			m, err := a.g.Protect([]byte("m"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.g.Process(m); err != nil {
				t.Fatal(err)
			}
			ch = b.g.TakeChanges()
			apply(ch)
			_ = i
		}
		// After the second message, the ratchet secret of generation 1
		// died, generation 2's is stored, and no key of either message
		// remains (§9.2).
		dead := ch.DeletedKeyMaterial()
		if !slices.Contains(dead, prefix+"ratchet/"+leaf+"/a/1") || !store[prefix+"ratchet/"+leaf+"/a/2"] {
			t.Fatalf("epoch %d: deletions %v", epoch, dead)
		}
		if count(prefix+"key/", "") != 0 {
			t.Fatalf("epoch %d: message keys kept", epoch)
		}
		commitAll(t, a, &group.CommitOptions{ForcePath: true}, b)
		ch = b.g.TakeChanges()
		apply(ch)
		dead = ch.DeletedKeyMaterial()
		if !slices.Contains(dead, "epoch/"+itoa(epoch)+"/secrets") {
			t.Fatalf("epoch %d secrets not deleted: %v", epoch, dead)
		}
		if got := count("epoch/", "/sender-data"); got != min(int(b.g.Epoch())-1, 2)+1 {
			t.Fatalf("epoch %d: %d sender data secrets kept", b.g.Epoch(), got)
		}
		if got := count("epoch/", "/secrets"); got != 1 {
			t.Fatalf("%d epoch secrets kept", got)
		}
		if got := count("resumption/", ""); got != min(int(b.g.Epoch())-1, 1)+1 {
			t.Fatalf("%d resumption PSKs kept", got)
		}
	}
	// The store holds exactly the live key material.
	live := map[string]bool{}
	for _, r := range b.g.Records() {
		if r.Key.Class == storage.KeyMaterial {
			live[r.Key.Name] = true
		}
	}
	for name := range store {
		if !live[name] {
			t.Errorf("dead key material still stored: %s", name)
		}
	}
	for name := range live {
		if !store[name] {
			t.Errorf("live key material never stored: %s", name)
		}
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
