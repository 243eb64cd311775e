package group_test

import (
	"errors"
	"testing"
	"time"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// trio is a group of alice, bob and carol in epoch 1, with handshake
// messages as PublicMessage or PrivateMessage.
type trio struct {
	suite              ciphersuite.ID
	alice, bob, carol  *client
	all                []*client
	wf                 wire.WireFormat
	extKey             *ciphersuite.SigningKey
	dave               *client // not a member
	daveKP             *group.KeyPackageBundle
	removedLeaf        treemath.LeafIndex
	wrongEpochProposal *wire.MLSMessage
}

func newTrio(t testing.TB, private bool) *trio {
	t.Helper()
	suite := ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	tr := &trio{suite: suite, wf: wire.WireFormatPublicMessage}
	if private {
		tr.wf = wire.WireFormatPrivateMessage
	}
	tr.alice, tr.bob, tr.carol = newClient(t, suite, "alice", 11), newClient(t, suite, "bob", 12), newClient(t, suite, "carol", 13)
	tr.dave = newClient(t, suite, "dave", 14)
	erin := newClient(t, suite, "erin", 15)
	tr.all = []*client{tr.alice, tr.bob, tr.carol}
	s, _ := ciphersuite.Lookup(suite)
	var err error
	if tr.extKey, err = s.GenerateSigningKey(newRand(77)); err != nil {
		t.Fatal(err)
	}
	for _, c := range append(tr.all, erin) {
		c.cfg.EncryptHandshake = private
		c.cfg.RatchetTreeExtension = true
		c.cfg.MaxForwardDistance = 30
	}
	tr.alice.cfg.ExternalSenders = []wire.ExternalSender{{SignatureKey: tr.extKey.PublicKey(), Credential: wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: []byte("ds")}}}
	if tr.alice.g, err = group.Create(tr.alice.cfg, suite, tr.alice.id, []byte("trio"), nil); err != nil {
		t.Fatal(err)
	}
	// Erin joins and is removed, so that the tree has a blank leaf.
	bkp, ckp, ekp := tr.bob.keyPackage(t, suite), tr.carol.keyPackage(t, suite), erin.keyPackage(t, suite)
	res, err := tr.alice.g.Commit(&group.CommitOptions{Proposals: []*wire.Proposal{addProposal(ekp), addProposal(bkp), addProposal(ckp)}})
	if err != nil {
		t.Fatal(err)
	}
	tr.alice.g.MergePendingCommit()
	for c, kp := range map[*client]*group.KeyPackageBundle{tr.bob: bkp, tr.carol: ckp, erin: ekp} {
		if c.g, err = group.Join(c.cfg, res.Welcome.Welcome, kp, nil); err != nil {
			t.Fatal(err)
		}
	}
	// A proposal of epoch 1, for the wrong-epoch test.
	if tr.wrongEpochProposal, _, err = erin.g.ProposeExternalPSK([]byte("x")); err != nil {
		t.Fatal(err)
	}
	tr.removedLeaf = erin.g.OwnLeafIndex()
	res, err = tr.alice.g.Commit(&group.CommitOptions{Proposals: []*wire.Proposal{removeProposal(tr.removedLeaf)}})
	if err != nil {
		t.Fatal(err)
	}
	tr.alice.g.MergePendingCommit()
	for _, c := range []*client{tr.bob, tr.carol} {
		rm, err := c.g.Process(res.Commit)
		if err != nil {
			t.Fatal(err)
		}
		c.g.MergeStagedCommit(rm.Commit)
	}
	tr.daveKP = tr.dave.keyPackage(t, suite)
	for _, c := range tr.all {
		c.g.TakeChanges()
	}
	mustEqualAuthenticators(t, tr.all...)
	return tr
}

// reject processes msg at c and requires an error matching want and an
// unchanged state: same records, and no change logged for storage.
func reject(t *testing.T, c *client, msg *wire.MLSMessage, want error) {
	t.Helper()
	c.g.TakeChanges()
	before := fingerprint(c.g)
	rm, err := c.g.Process(msg)
	if err == nil {
		t.Fatalf("accepted: %+v", rm)
	}
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
	if fingerprint(c.g) != before {
		t.Fatalf("rejection (%v) changed the state", err)
	}
	if ch := c.g.TakeChanges(); !ch.Empty() {
		t.Fatalf("rejection (%v) logged changes: %+v", err, ch.DeletedKeyMaterial())
	}
}

func reencode(t *testing.T, m *wire.MLSMessage) *wire.MLSMessage {
	t.Helper()
	out, err := wire.UnmarshalMLSMessage(m.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestNegativeMessages(t *testing.T) {
	for _, private := range []bool{false, true} {
		name := "public"
		if private {
			name = "private"
		}
		t.Run(name, func(t *testing.T) { negativeMessages(t, private) })
	}
}

func negativeMessages(t *testing.T, private bool) {
	tr := newTrio(t, private)
	alice, bob, carol := tr.alice, tr.bob, tr.carol
	aliceKey := alice.g.SigningKey()
	propose := func() *wire.MLSMessage {
		m, _, err := alice.g.ProposeExternalPSK([]byte("psk"))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}

	t.Run("wrong group", func(t *testing.T) {
		m := reencode(t, propose())
		if private {
			m.PrivateMessage.GroupID = []byte("other")
		} else {
			m.PublicMessage.Content.GroupID = []byte("other")
		}
		reject(t, bob, m, group.ErrWrongGroup)
	})
	t.Run("wrong epoch", func(t *testing.T) {
		reject(t, bob, tr.wrongEpochProposal, group.ErrWrongEpoch)
		m := reencode(t, propose())
		if private {
			m.PrivateMessage.Epoch += 5
		} else {
			m.PublicMessage.Content.Epoch += 5
		}
		reject(t, bob, m, group.ErrWrongEpoch)
	})
	t.Run("bad signature", func(t *testing.T) {
		// Alice's group protects content signed with another key: the
		// membership tag or encryption is valid, the signature is not.
		content := wire.FramedContent{
			Sender:      wire.Sender{SenderType: wire.SenderTypeMember, LeafIndex: uint32(alice.g.OwnLeafIndex())},
			ContentType: wire.ContentTypeProposal,
			Proposal:    &wire.Proposal{ProposalType: wire.ProposalTypeRemove, Remove: &wire.Remove{Removed: uint32(carol.g.OwnLeafIndex())}},
		}
		m, err := group.ForgeMessage(alice.g, tr.wf, content, bob.g.SigningKey(), nil)
		if err != nil {
			t.Fatal(err)
		}
		reject(t, carol, m, group.ErrBadSignature)
	})
	t.Run("bad external signature", func(t *testing.T) {
		ctx := alice.g.GroupContext()
		other, _ := ciphersuite.Lookup(tr.suite)
		k, _ := other.GenerateSigningKey(newRand(5))
		m, err := group.NewExternalProposal(tr.suite, ctx.GroupID, ctx.Epoch, group.ExternalSenderKey{Index: 0, SigningKey: k}, removeProposal(carol.g.OwnLeafIndex()))
		if err != nil {
			t.Fatal(err)
		}
		reject(t, bob, m, group.ErrBadSignature)
		m, err = group.NewExternalProposal(tr.suite, ctx.GroupID, ctx.Epoch, group.ExternalSenderKey{Index: 3, SigningKey: tr.extKey}, removeProposal(carol.g.OwnLeafIndex()))
		if err != nil {
			t.Fatal(err)
		}
		reject(t, bob, m, group.ErrUnauthorizedSender)
	})
	if !private {
		t.Run("bad membership tag", func(t *testing.T) {
			m := reencode(t, propose())
			m.PublicMessage.MembershipTag[0] ^= 1
			reject(t, bob, m, group.ErrBadMembershipTag)
			m = reencode(t, propose())
			m.PublicMessage.Auth.Signature[0] ^= 1 // covered by the tag
			reject(t, bob, m, group.ErrBadMembershipTag)
		})
	} else {
		t.Run("tampered ciphertext", func(t *testing.T) {
			app, err := carol.g.Protect([]byte("secret message"), nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, pos := range []int{0, 40, -1} {
				m := reencode(t, app)
				ct := m.PrivateMessage.Ciphertext
				if pos < 0 {
					pos = len(ct) - 1
				}
				ct[pos] ^= 0x80
				reject(t, bob, m, group.ErrDecryption)
			}
			m := reencode(t, app)
			m.PrivateMessage.EncryptedSenderData[3] ^= 1
			reject(t, bob, m, group.ErrDecryption)
			m = reencode(t, app)
			m.PrivateMessage.AuthenticatedData = []byte("changed")
			reject(t, bob, m, group.ErrDecryption)
			// The untampered message still decrypts: no key was burnt.
			if rm, err := bob.g.Process(app); err != nil || string(rm.ApplicationData) != "secret message" {
				t.Fatalf("original after tampered copies: %v", err)
			}
			t.Run("replay", func(t *testing.T) { reject(t, bob, app, group.ErrReplay) })
		})
		t.Run("too far ahead", func(t *testing.T) {
			var last *wire.MLSMessage
			for range 40 {
				m, err := carol.g.Protect([]byte("x"), nil)
				if err != nil {
					t.Fatal(err)
				}
				last = m
			}
			reject(t, bob, last, group.ErrTooFarAhead)
		})
	}
	t.Run("removed member", func(t *testing.T) {
		content := wire.FramedContent{
			Sender:      wire.Sender{SenderType: wire.SenderTypeMember, LeafIndex: uint32(tr.removedLeaf)},
			ContentType: wire.ContentTypeProposal,
			Proposal:    &wire.Proposal{ProposalType: wire.ProposalTypeRemove, Remove: &wire.Remove{Removed: uint32(carol.g.OwnLeafIndex())}},
		}
		m, err := group.ForgeMessage(alice.g, tr.wf, content, aliceKey, nil)
		if err != nil {
			t.Fatal(err)
		}
		reject(t, bob, m, group.ErrSenderNotMember)
	})
	t.Run("malformed", func(t *testing.T) {
		c := bob.g
		before := fingerprint(c)
		b := propose().Bytes()
		for _, n := range []int{0, 1, 5, len(b) - 1} {
			if _, err := c.ProcessBytes(b[:n]); !errors.Is(err, group.ErrMalformed) || !errors.Is(err, codec.ErrMalformed) {
				t.Fatalf("truncated to %d: %v", n, err)
			}
		}
		if fingerprint(c) != before {
			t.Fatal("state changed")
		}
	})
	if private {
		t.Run("application data as public", func(t *testing.T) {
			content := wire.FramedContent{
				Sender:          wire.Sender{SenderType: wire.SenderTypeMember, LeafIndex: uint32(alice.g.OwnLeafIndex())},
				ContentType:     wire.ContentTypeApplication,
				ApplicationData: []byte("x"),
			}
			if _, err := group.ForgeMessage(alice.g, wire.WireFormatPublicMessage, content, aliceKey, nil); err == nil {
				t.Fatal("framing protected application data as public")
			}
		})
	}
}

// TestNegativeCommits sends commits that break §12.2 and §12.4 from a
// misbehaving member and checks that the receivers reject them unchanged.
func TestNegativeCommits(t *testing.T) {
	for _, private := range []bool{false, true} {
		tr := newTrio(t, private)
		alice, bob, carol := tr.alice, tr.bob, tr.carol
		s, _ := ciphersuite.Lookup(tr.suite)
		tag := make([]byte, s.HashLen())
		aliceLeaf := uint32(alice.g.OwnLeafIndex())
		forge := func(props []wire.ProposalOrRef, path *wire.UpdatePath) *wire.MLSMessage {
			t.Helper()
			content := wire.FramedContent{
				Sender:      wire.Sender{SenderType: wire.SenderTypeMember, LeafIndex: aliceLeaf},
				ContentType: wire.ContentTypeCommit,
				Commit:      &wire.Commit{Proposals: props, Path: path},
			}
			m, err := group.ForgeMessage(alice.g, tr.wf, content, alice.g.SigningKey(), tag)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
		byValue := func(ps ...*wire.Proposal) []wire.ProposalOrRef {
			var out []wire.ProposalOrRef
			for _, p := range ps {
				out = append(out, wire.ProposalOrRef{Type: wire.ProposalOrRefTypeProposal, Proposal: p})
			}
			return out
		}
		psk := func(usage wire.ResumptionPSKUsage, nonce int) *wire.Proposal {
			return &wire.Proposal{ProposalType: wire.ProposalTypePSK, PreSharedKey: &wire.PreSharedKey{PSK: wire.PreSharedKeyID{
				PSKType: wire.PSKTypeResumption, Usage: usage, PSKGroupID: alice.g.GroupID(), PSKEpoch: alice.g.Epoch(), PSKNonce: make([]byte, nonce),
			}}}
		}
		gce := &wire.Proposal{ProposalType: wire.ProposalTypeGroupContextExtensions, GroupContextExtensions: &wire.GroupContextExtensions{Extensions: []wire.Extension{}}}
		reinit := &wire.Proposal{ProposalType: wire.ProposalTypeReInit, ReInit: &wire.ReInit{GroupID: []byte("n"), Version: wire.ProtocolVersionMLS10, CipherSuite: 1, Extensions: []wire.Extension{}}}
		// A valid path for the commits that need one.
		res, err := alice.g.Commit(&group.CommitOptions{ForcePath: true})
		if err != nil {
			t.Fatal(err)
		}
		var path *wire.UpdatePath
		if private {
			path = nil // a PrivateMessage commit cannot be opened here; rules below do not need the path
		} else {
			path = res.Commit.PublicMessage.Content.Commit.Path
		}
		alice.g.ClearPendingCommit()
		expired := func() *group.KeyPackageBundle {
			c := *tr.dave.cfg
			c.Now = func() time.Time { return testNow.Add(-365 * 24 * time.Hour) }
			c.KeyPackageLifetime = time.Hour
			kp, err := group.NewKeyPackage(tr.suite, tr.dave.id, &c, nil)
			if err != nil {
				t.Fatal(err)
			}
			return kp
		}()
		updateByCommitter := func() *wire.Proposal {
			m, _, err := alice.g.ProposeUpdate(nil)
			if err != nil {
				t.Fatal(err)
			}
			rm, err := carol.g.Process(m)
			if err != nil {
				t.Fatal(err)
			}
			return rm.Proposal.Proposal
		}()
		cases := []struct {
			name  string
			msg   *wire.MLSMessage
			want  error
			check error
		}{
			{"duplicate adds", forge(byValue(addProposal(tr.daveKP), addProposal(tr.daveKP)), nil), group.ErrInvalidCommit, nil},
			{"add of a member", forge(byValue(&wire.Proposal{ProposalType: wire.ProposalTypeAdd, Add: &wire.Add{KeyPackage: *bob.keyPackage(t, tr.suite).KeyPackage}}), nil), group.ErrInvalidProposal, nil},
			{"expired key package", forge(byValue(addProposal(expired)), nil), group.ErrKeyPackageExpired, nil},
			{"remove of a blank leaf", forge(byValue(removeProposal(tr.removedLeaf)), path), group.ErrInvalidProposal, nil},
			{"remove of the committer", forge(byValue(removeProposal(alice.g.OwnLeafIndex())), path), group.ErrInvalidCommit, nil},
			{"two removes of one leaf", forge(byValue(removeProposal(carol.g.OwnLeafIndex()), removeProposal(carol.g.OwnLeafIndex())), path), group.ErrInvalidCommit, nil},
			{"update by the committer", forge(byValue(updateByCommitter), path), group.ErrInvalidCommit, nil},
			{"external init", forge(byValue(&wire.Proposal{ProposalType: wire.ProposalTypeExternalInit, ExternalInit: &wire.ExternalInit{KEMOutput: []byte{1}}}), path), group.ErrInvalidCommit, nil},
			{"two GroupContextExtensions", forge(byValue(gce, gce), path), group.ErrInvalidCommit, nil},
			{"ReInit with others", forge(byValue(reinit, addProposal(tr.daveKP)), nil), group.ErrInvalidCommit, nil},
			{"same PSK twice", forge(byValue(psk(wire.ResumptionPSKUsageApplication, s.HashLen()), psk(wire.ResumptionPSKUsageApplication, s.HashLen())), nil), group.ErrInvalidCommit, nil},
			{"PSK with reinit usage", forge(byValue(psk(wire.ResumptionPSKUsageReInit, s.HashLen())), nil), group.ErrInvalidProposal, nil},
			{"PSK with a short nonce", forge(byValue(psk(wire.ResumptionPSKUsageApplication, 3)), nil), group.ErrInvalidProposal, nil},
			{"unknown PSK", forge(byValue(&wire.Proposal{ProposalType: wire.ProposalTypePSK, PreSharedKey: &wire.PreSharedKey{PSK: wire.PreSharedKeyID{PSKType: wire.PSKTypeExternal, PSKID: []byte("nope"), PSKNonce: make([]byte, s.HashLen())}}}), nil), group.ErrUnknownPSK, nil},
			{"unknown reference", forge([]wire.ProposalOrRef{{Type: wire.ProposalOrRefTypeReference, Reference: make([]byte, s.HashLen())}}, nil), group.ErrUnknownProposal, nil},
			{"remove without path", forge(byValue(removeProposal(carol.g.OwnLeafIndex())), nil), group.ErrInvalidCommit, nil},
			{"empty commit without path", forge(nil, nil), group.ErrInvalidCommit, nil},
			{"unsupported custom proposal", forge(byValue(&wire.Proposal{ProposalType: 0xff00, Custom: []byte{1}}), path), group.ErrUnsupported, nil},
			{"unsupported required capability", forge(byValue(&wire.Proposal{ProposalType: wire.ProposalTypeGroupContextExtensions, GroupContextExtensions: &wire.GroupContextExtensions{Extensions: []wire.Extension{wire.RequiredCapabilitiesExtension(&wire.RequiredCapabilities{ExtensionTypes: []wire.ExtensionType{0xff01}, ProposalTypes: []wire.ProposalType{}, CredentialTypes: []wire.CredentialType{}})}}}), path), group.ErrUnsupported, nil},
			{"bad confirmation tag", forge(byValue(addProposal(tr.daveKP)), nil), group.ErrBadConfirmationTag, nil},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				reject(t, bob, c.msg, c.want)
			})
		}
		// The committer's own checks reject the same lists.
		for _, props := range [][]*wire.Proposal{
			{addProposal(tr.daveKP), addProposal(tr.daveKP)},
			{removeProposal(tr.removedLeaf)},
			{removeProposal(alice.g.OwnLeafIndex())},
			{reinit, addProposal(tr.daveKP)},
			{gce, gce},
		} {
			before := fingerprint(alice.g)
			alice.g.TakeChanges()
			if _, err := alice.g.Commit(&group.CommitOptions{Proposals: props}); err == nil {
				t.Fatalf("committer accepted an invalid list %v", props[0].ProposalType)
			}
			if fingerprint(alice.g) != before || !alice.g.TakeChanges().Empty() {
				t.Fatal("failed commit changed the state")
			}
		}
		// A valid commit is still accepted by everyone.
		res, err = alice.g.Commit(&group.CommitOptions{Proposals: []*wire.Proposal{addProposal(tr.daveKP)}})
		if err != nil {
			t.Fatal(err)
		}
		alice.g.MergePendingCommit()
		for _, c := range []*client{bob, carol} {
			rm, err := c.g.Process(res.Commit)
			if err != nil {
				t.Fatal(err)
			}
			c.g.MergeStagedCommit(rm.Commit)
		}
		mustEqualAuthenticators(t, tr.all...)
	}
}
