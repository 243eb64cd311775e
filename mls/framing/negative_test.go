package framing_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/framing"
	"github.com/mlsengine/mlsengine/mls/keyschedule"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/secrettree"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// suite1 is the fixture of the first vector case (suite 1), which the
// negative tests use.
func suite1(t testing.TB) *fixture { return newFixture(t, loadVectors(t)[0]) }

// protectApp returns a PrivateMessage carrying data from senderLeaf,
// protected with sender, through an encoding round trip.
func protectApp(t testing.TB, f *fixture, sender *framing.Epoch, data []byte) *wire.PrivateMessage {
	t.Helper()
	return protectPriv(t, f, sender, f.content(t, wire.ContentTypeApplication, data), f.key)
}

func protectPriv(t testing.TB, f *fixture, sender *framing.Epoch, c *wire.FramedContent, key *ciphersuite.SigningKey) *wire.PrivateMessage {
	t.Helper()
	ac, err := sender.Sign(wire.WireFormatPrivateMessage, c, key)
	if err != nil {
		t.Fatal(err)
	}
	if c.ContentType == wire.ContentTypeCommit {
		ac.Auth.ConfirmationTag = f.confirmationTag(t)
	}
	pm, err := sender.ProtectPrivate(ac, 0)
	if err != nil {
		t.Fatal(err)
	}
	return reparsePriv(t, pm)
}

func reparsePriv(t testing.TB, pm *wire.PrivateMessage) *wire.PrivateMessage {
	t.Helper()
	b, err := wire.Marshal(wire.WrapPrivateMessage(pm))
	if err != nil {
		t.Fatal(err)
	}
	out, err := wire.UnmarshalMLSPrivateMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// protectProposal returns a member PublicMessage carrying the case's
// proposal, through an encoding round trip.
func protectProposal(t testing.TB, f *fixture, fe *framing.Epoch) *wire.PublicMessage {
	t.Helper()
	ac, err := fe.Sign(wire.WireFormatPublicMessage, f.content(t, wire.ContentTypeProposal, f.v.Proposal), f.key)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := fe.ProtectPublic(ac)
	if err != nil {
		t.Fatal(err)
	}
	return reparsePub(t, pm)
}

func reparsePub(t testing.TB, pm *wire.PublicMessage) *wire.PublicMessage {
	t.Helper()
	b, err := wire.Marshal(wire.WrapPublicMessage(pm))
	if err != nil {
		t.Fatal(err)
	}
	out, err := wire.UnmarshalMLSPublicMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// expectErr fails unless err matches every target, and checks that the
// error text holds none of the case's secrets.
func expectErr(t *testing.T, f *fixture, err error, targets ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", targets)
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Errorf("error %q does not match %q", err, target)
		}
	}
	msg := err.Error()
	for _, s := range [][]byte{f.v.EncryptionSecret, f.v.SenderDataSecret, f.v.MembershipKey, f.v.SignaturePriv} {
		if strings.Contains(msg, hex.EncodeToString(s)) || strings.Contains(msg, string(s)) {
			t.Errorf("error %q contains a secret", msg)
		}
	}
}

func otherContext(f *fixture, edit func(gc *wire.GroupContext)) *wire.GroupContext {
	gc := *f.gc
	edit(&gc)
	return &gc
}

func TestWrongGroupAndEpoch(t *testing.T) {
	f := suite1(t)
	for _, tc := range []struct {
		name string
		gc   *wire.GroupContext
		want error
	}{
		{"epoch", otherContext(f, func(gc *wire.GroupContext) { gc.Epoch++ }), framing.ErrWrongEpoch},
		{"group", otherContext(f, func(gc *wire.GroupContext) { gc.GroupID = []byte("another group") }), framing.ErrWrongGroup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			priv := protectApp(t, f, f.epoch(f.tree(t)), []byte("hello"))
			pub := protectProposal(t, f, f.epoch(f.tree(t)))
			tree := f.tree(t)
			fe := f.epoch(tree)
			fe.Context = tc.gc
			_, _, err := fe.UnprotectPrivate(priv)
			expectErr(t, f, err, tc.want)
			_, err = fe.UnprotectPublic(pub)
			expectErr(t, f, err, tc.want)
			// The check comes first: the generation is still there.
			if _, _, err := f.epoch(tree).UnprotectPrivate(priv); err != nil {
				t.Errorf("after a rejected message: %v", err)
			}
			// A sender cannot sign for another group or epoch either.
			_, err = fe.Sign(wire.WireFormatPrivateMessage, f.content(t, wire.ContentTypeApplication, nil), f.key)
			expectErr(t, f, err, tc.want)
		})
	}
}

func TestTamperedPrivateMessage(t *testing.T) {
	f := suite1(t)
	nh := f.suite.HashLen()
	for _, tc := range []struct {
		name   string
		tamper func(pm *wire.PrivateMessage)
	}{
		{"ciphertext sample", func(pm *wire.PrivateMessage) { pm.Ciphertext[0] ^= 1 }},
		{"ciphertext after sample", func(pm *wire.PrivateMessage) { pm.Ciphertext[nh+1] ^= 1 }},
		{"ciphertext tag", func(pm *wire.PrivateMessage) { pm.Ciphertext[len(pm.Ciphertext)-1] ^= 1 }},
		{"ciphertext truncated", func(pm *wire.PrivateMessage) { pm.Ciphertext = pm.Ciphertext[:len(pm.Ciphertext)-1] }},
		{"ciphertext short", func(pm *wire.PrivateMessage) { pm.Ciphertext = pm.Ciphertext[:3] }},
		{"sender data", func(pm *wire.PrivateMessage) { pm.EncryptedSenderData[2] ^= 0x80 }},
		{"sender data length", func(pm *wire.PrivateMessage) { pm.EncryptedSenderData = pm.EncryptedSenderData[1:] }},
		{"authenticated data", func(pm *wire.PrivateMessage) { pm.AuthenticatedData = []byte("x") }},
		{"content type", func(pm *wire.PrivateMessage) { pm.ContentType = wire.ContentTypeProposal }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pm := protectApp(t, f, f.epoch(f.tree(t)), bytes.Repeat([]byte{7}, 100))
			tc.tamper(pm)
			_, _, err := f.epoch(f.tree(t)).UnprotectPrivate(pm)
			expectErr(t, f, err, framing.ErrDecryption)
		})
	}
}

func TestBadSignature(t *testing.T) {
	f := suite1(t)
	other, err := f.suite.GenerateSigningKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("private wrong key", func(t *testing.T) {
		pm := protectPriv(t, f, f.epoch(f.tree(t)), f.content(t, wire.ContentTypeApplication, []byte("x")), other)
		_, _, err := f.epoch(f.tree(t)).UnprotectPrivate(pm)
		expectErr(t, f, err, framing.ErrBadSignature, ciphersuite.ErrInvalidSignature)
	})
	t.Run("private tampered signature", func(t *testing.T) {
		sender := f.epoch(f.tree(t))
		ac, err := sender.Sign(wire.WireFormatPrivateMessage, f.content(t, wire.ContentTypeProposal, f.v.Proposal), f.key)
		if err != nil {
			t.Fatal(err)
		}
		ac.Auth.Signature[5] ^= 1
		pm, err := sender.ProtectPrivate(ac, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = f.epoch(f.tree(t)).UnprotectPrivate(pm)
		expectErr(t, f, err, framing.ErrBadSignature, ciphersuite.ErrInvalidSignature)
	})
	t.Run("public tampered signature", func(t *testing.T) {
		fe := f.epoch(f.tree(t))
		ac, err := fe.Sign(wire.WireFormatPublicMessage, f.content(t, wire.ContentTypeProposal, f.v.Proposal), f.key)
		if err != nil {
			t.Fatal(err)
		}
		ac.Auth.Signature[0] ^= 1
		pm, err := fe.ProtectPublic(ac) // a valid membership tag over a bad signature
		if err != nil {
			t.Fatal(err)
		}
		_, err = fe.UnprotectPublic(reparsePub(t, pm))
		expectErr(t, f, err, framing.ErrBadSignature, ciphersuite.ErrInvalidSignature)
	})
	t.Run("signed for the other wire format", func(t *testing.T) {
		fe := f.epoch(f.tree(t))
		ac, err := fe.Sign(wire.WireFormatPrivateMessage, f.content(t, wire.ContentTypeProposal, f.v.Proposal), f.key)
		if err != nil {
			t.Fatal(err)
		}
		ac.WireFormat = wire.WireFormatPublicMessage
		pm, err := fe.ProtectPublic(ac)
		if err != nil {
			t.Fatal(err)
		}
		_, err = fe.UnprotectPublic(pm)
		expectErr(t, f, err, framing.ErrBadSignature)
	})
	t.Run("Verify", func(t *testing.T) {
		fe := f.epoch(f.tree(t))
		ac, err := fe.Sign(wire.WireFormatPublicMessage, f.content(t, wire.ContentTypeProposal, f.v.Proposal), f.key)
		if err != nil {
			t.Fatal(err)
		}
		if err := fe.Verify(ac, f.v.SignaturePub); err != nil {
			t.Errorf("Verify: %v", err)
		}
		expectErr(t, f, fe.Verify(ac, other.PublicKey()), framing.ErrBadSignature, ciphersuite.ErrInvalidSignature)
		expectErr(t, f, fe.Verify(ac, []byte{1, 2, 3}), framing.ErrBadSignature, ciphersuite.ErrInvalidKey)
		fe.Context = otherContext(f, func(gc *wire.GroupContext) { gc.TreeHash = []byte{1} })
		expectErr(t, f, fe.Verify(ac, f.v.SignaturePub), framing.ErrBadSignature)
	})
}

func TestBadMembershipTag(t *testing.T) {
	f := suite1(t)
	for _, tc := range []struct {
		name   string
		tamper func(pm *wire.PublicMessage)
	}{
		{"flipped", func(pm *wire.PublicMessage) { pm.MembershipTag[3] ^= 1 }},
		{"empty", func(pm *wire.PublicMessage) { pm.MembershipTag = []byte{} }},
		{"truncated", func(pm *wire.PublicMessage) { pm.MembershipTag = pm.MembershipTag[:16] }},
		{"content", func(pm *wire.PublicMessage) { pm.Content.AuthenticatedData = []byte("x") }},
		{"signature", func(pm *wire.PublicMessage) { pm.Auth.Signature[0] ^= 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fe := f.epoch(f.tree(t))
			pm := protectProposal(t, f, fe)
			tc.tamper(pm)
			_, err := fe.UnprotectPublic(pm)
			expectErr(t, f, err, framing.ErrBadMembershipTag)
		})
	}
	t.Run("other membership key", func(t *testing.T) {
		fe := f.epoch(f.tree(t))
		pm := protectProposal(t, f, fe)
		fe.Secrets = &framing.Secrets{Suite: f.suite, MembershipKey: secret.Copy(f.v.SenderDataSecret)}
		_, err := fe.UnprotectPublic(pm)
		expectErr(t, f, err, framing.ErrBadMembershipTag)
	})
}

func TestReplay(t *testing.T) {
	f := suite1(t)
	sender := f.epoch(f.tree(t))
	receiver := f.epoch(f.tree(t))
	first := protectApp(t, f, sender, []byte("one"))
	second := protectApp(t, f, sender, []byte("two"))
	if _, _, err := receiver.UnprotectPrivate(first); err != nil {
		t.Fatal(err)
	}
	_, _, err := receiver.UnprotectPrivate(first)
	expectErr(t, f, err, secrettree.ErrGenerationConsumed)
	if _, _, err := receiver.UnprotectPrivate(second); err != nil {
		t.Fatal(err)
	}
	_, _, err = receiver.UnprotectPrivate(second)
	expectErr(t, f, err, secrettree.ErrGenerationConsumed)

	// The vector's own message, replayed.
	m, err := wire.UnmarshalMLSMessage(f.v.ApplicationPriv)
	if err != nil {
		t.Fatal(err)
	}
	fe := f.epoch(f.tree(t))
	if _, _, err := fe.Unprotect(m); err != nil {
		t.Fatal(err)
	}
	_, _, err = fe.Unprotect(m)
	expectErr(t, f, err, secrettree.ErrGenerationConsumed)
}

func TestOutOfOrderAndTooFarAhead(t *testing.T) {
	f := suite1(t)
	sender := f.epoch(f.tree(t))
	var msgs []*wire.PrivateMessage
	for i := range 5 {
		msgs = append(msgs, protectApp(t, f, sender, []byte{byte(i)}))
	}
	receiver := f.epoch(f.tree(t, secrettree.WithMaxForwardDistance(2)))
	_, _, err := receiver.UnprotectPrivate(msgs[3])
	expectErr(t, f, err, secrettree.ErrTooDistantInFuture)
	// Within reach, out of order.
	for _, i := range []int{2, 0, 1, 4, 3} {
		ac, sd, err := receiver.UnprotectPrivate(msgs[i])
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if sd.Generation != uint32(i) || !bytes.Equal(ac.Content.ApplicationData, []byte{byte(i)}) {
			t.Errorf("message %d: generation %d, data %x", i, sd.Generation, ac.Content.ApplicationData)
		}
	}
}

func TestSenderNotMember(t *testing.T) {
	f := suite1(t)
	t.Run("leaf out of range", func(t *testing.T) {
		// A 4-leaf tree lets leaf 3 send; the receiver's group has 2 leaves.
		big, err := secrettree.New(f.suite, secret.Copy(f.v.EncryptionSecret), 4)
		if err != nil {
			t.Fatal(err)
		}
		sender := f.epoch(big)
		c := f.content(t, wire.ContentTypeApplication, []byte("x"))
		c.Sender.LeafIndex = 3
		pm := protectPriv(t, f, sender, c, f.key)
		receiver := f.epoch(f.tree(t))
		receiver.IsMember = func(treemath.LeafIndex) bool { return true }
		_, _, err = receiver.UnprotectPrivate(pm)
		expectErr(t, f, err, framing.ErrSenderNotMember)
	})
	t.Run("blank leaf", func(t *testing.T) {
		pm := protectApp(t, f, f.epoch(f.tree(t)), []byte("x"))
		tree := f.tree(t)
		receiver := f.epoch(tree)
		receiver.IsMember = func(l treemath.LeafIndex) bool { return l != senderLeaf }
		_, _, err := receiver.UnprotectPrivate(pm)
		expectErr(t, f, err, framing.ErrSenderNotMember)
		// Rejected before the key was taken.
		if _, _, err := f.epoch(tree).UnprotectPrivate(pm); err != nil {
			t.Errorf("after a rejected message: %v", err)
		}
	})
	t.Run("public from blank leaf", func(t *testing.T) {
		fe := f.epoch(f.tree(t))
		pm := protectProposal(t, f, fe)
		fe.IsMember = func(treemath.LeafIndex) bool { return false }
		_, err := fe.UnprotectPublic(pm)
		expectErr(t, f, err, framing.ErrSenderNotMember)
	})
	t.Run("unknown sender", func(t *testing.T) {
		pm := protectApp(t, f, f.epoch(f.tree(t)), []byte("x"))
		receiver := f.epoch(f.tree(t))
		lookupErr := errors.New("no such leaf")
		receiver.SignatureKey = func(*wire.AuthenticatedContent) ([]byte, error) { return nil, lookupErr }
		_, _, err := receiver.UnprotectPrivate(pm)
		expectErr(t, f, err, framing.ErrUnknownSender, lookupErr)
	})
}

func TestSenderRules(t *testing.T) {
	f := suite1(t)
	fe := f.epoch(f.tree(t))
	add := &wire.Proposal{ProposalType: wire.ProposalTypeAdd, Add: &wire.Add{KeyPackage: wire.KeyPackage{
		Version: wire.ProtocolVersionMLS10,
		LeafNode: wire.LeafNode{
			Credential:     wire.Credential{CredentialType: wire.CredentialTypeBasic},
			LeafNodeSource: wire.LeafNodeSourceKeyPackage,
			Lifetime:       &wire.Lifetime{},
		},
	}}}
	remove, err := wire.Unmarshal[wire.Proposal](f.v.Proposal)
	if err != nil {
		t.Fatal(err)
	}
	commit, err := wire.Unmarshal[wire.Commit](f.v.Commit)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		wf   wire.WireFormat
		st   wire.SenderType
		ct   wire.ContentType
		p    *wire.Proposal
		want error // nil: allowed
	}{
		{"external proposal", wire.WireFormatPublicMessage, wire.SenderTypeExternal, wire.ContentTypeProposal, remove, nil},
		{"external commit", wire.WireFormatPublicMessage, wire.SenderTypeExternal, wire.ContentTypeCommit, nil, framing.ErrInvalidSender},
		{"external private", wire.WireFormatPrivateMessage, wire.SenderTypeExternal, wire.ContentTypeProposal, remove, framing.ErrInvalidSender},
		{"new member commit", wire.WireFormatPublicMessage, wire.SenderTypeNewMemberCommit, wire.ContentTypeCommit, nil, nil},
		{"new member commit proposal", wire.WireFormatPublicMessage, wire.SenderTypeNewMemberCommit, wire.ContentTypeProposal, remove, framing.ErrInvalidSender},
		{"new member proposal add", wire.WireFormatPublicMessage, wire.SenderTypeNewMemberProposal, wire.ContentTypeProposal, add, nil},
		{"new member proposal remove", wire.WireFormatPublicMessage, wire.SenderTypeNewMemberProposal, wire.ContentTypeProposal, remove, framing.ErrInvalidSender},
		{"new member private", wire.WireFormatPrivateMessage, wire.SenderTypeNewMemberCommit, wire.ContentTypeCommit, nil, framing.ErrInvalidSender},
		{"reserved sender", wire.WireFormatPublicMessage, 0, wire.ContentTypeProposal, remove, framing.ErrInvalidSender},
		{"reserved content type", wire.WireFormatPrivateMessage, wire.SenderTypeMember, 0, nil, framing.ErrContentType},
		{"missing proposal", wire.WireFormatPrivateMessage, wire.SenderTypeMember, wire.ContentTypeProposal, nil, framing.ErrContentType},
		{"welcome wire format", wire.WireFormatWelcome, wire.SenderTypeMember, wire.ContentTypeProposal, remove, framing.ErrWireFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := f.content(t, wire.ContentTypeApplication, nil)
			c.Sender = wire.Sender{SenderType: tc.st}
			c.ContentType, c.Proposal = tc.ct, tc.p
			if tc.ct == wire.ContentTypeCommit {
				c.Commit = commit
			}
			ac, err := fe.Sign(tc.wf, c, f.key)
			if tc.want != nil {
				expectErr(t, f, err, tc.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.ct == wire.ContentTypeCommit {
				ac.Auth.ConfirmationTag = f.confirmationTag(t)
			}
			pm, err := fe.ProtectPublic(ac)
			if err != nil {
				t.Fatal(err)
			}
			if pm.MembershipTag != nil {
				t.Errorf("membership tag for a %v sender", tc.st)
			}
			got, err := fe.UnprotectPublic(reparsePub(t, pm))
			if err != nil {
				t.Fatal(err)
			}
			if got.Content.Sender.SenderType != tc.st {
				t.Errorf("sender %v", got.Content.Sender)
			}
		})
	}
	t.Run("received", func(t *testing.T) {
		// A PublicMessage the decoder accepts but framing must not.
		for _, c := range []wire.FramedContent{
			{GroupID: f.v.GroupID, Epoch: f.v.Epoch, Sender: wire.Sender{SenderType: wire.SenderTypeExternal}, ContentType: wire.ContentTypeCommit, Commit: commit},
			{GroupID: f.v.GroupID, Epoch: f.v.Epoch, Sender: wire.Sender{SenderType: wire.SenderTypeMember, LeafIndex: 1}, ContentType: wire.ContentTypeApplication, ApplicationData: []byte("x")},
		} {
			pm := reparsePub(t, &wire.PublicMessage{Content: c, Auth: wire.FramedContentAuthData{Signature: []byte{1}, ConfirmationTag: make([]byte, 32)}})
			_, err := fe.UnprotectPublic(pm)
			if c.ContentType == wire.ContentTypeApplication {
				expectErr(t, f, err, framing.ErrApplicationAsPublic, framing.ErrContentType)
			} else {
				expectErr(t, f, err, framing.ErrInvalidSender)
			}
		}
	})
}

func TestConfirmationTag(t *testing.T) {
	f := suite1(t)
	fe := f.epoch(f.tree(t))
	for _, wf := range []wire.WireFormat{wire.WireFormatPublicMessage, wire.WireFormatPrivateMessage} {
		ac, err := fe.Sign(wf, f.content(t, wire.ContentTypeCommit, f.v.Commit), f.key)
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range [][]byte{nil, make([]byte, 5)} {
			ac.Auth.ConfirmationTag = tag
			if wf == wire.WireFormatPublicMessage {
				_, err = fe.ProtectPublic(ac)
			} else {
				_, err = fe.ProtectPrivate(ac, 0)
			}
			expectErr(t, f, err, framing.ErrConfirmationTag)
		}
	}
}

func TestWireFormatMismatch(t *testing.T) {
	f := suite1(t)
	fe := f.epoch(f.tree(t))
	ac, err := fe.Sign(wire.WireFormatPublicMessage, f.content(t, wire.ContentTypeProposal, f.v.Proposal), f.key)
	if err != nil {
		t.Fatal(err)
	}
	_, err = fe.ProtectPrivate(ac, 0)
	expectErr(t, f, err, framing.ErrWireFormat)
	ac.WireFormat = wire.WireFormatPrivateMessage
	_, err = fe.ProtectPublic(ac)
	expectErr(t, f, err, framing.ErrWireFormat)
	_, err = fe.ProtectPrivate(ac, -1)
	expectErr(t, f, err, framing.ErrPadding)
	_, _, err = fe.Unprotect(wire.WrapWelcome(&wire.Welcome{}))
	expectErr(t, f, err, framing.ErrWireFormat)
	_, _, err = fe.Unprotect(nil)
	expectErr(t, f, err, framing.ErrWireFormat)
}

func TestNotConfigured(t *testing.T) {
	f := suite1(t)
	pm := protectApp(t, f, f.epoch(f.tree(t)), []byte("x"))
	pub := protectProposal(t, f, f.epoch(f.tree(t)))
	for _, tc := range []struct {
		name string
		edit func(e *framing.Epoch)
	}{
		{"suite", func(e *framing.Epoch) { e.Suite = nil }},
		{"context", func(e *framing.Epoch) { e.Context = nil }},
		{"secrets", func(e *framing.Epoch) { e.Secrets = nil }},
		{"secret tree", func(e *framing.Epoch) { e.SecretTree = nil }},
		{"members", func(e *framing.Epoch) { e.IsMember = nil }},
		{"signature keys", func(e *framing.Epoch) { e.SignatureKey = nil }},
		{"suite mismatch", func(e *framing.Epoch) {
			e.Context = otherContext(f, func(gc *wire.GroupContext) { gc.CipherSuite = 2 })
		}},
		{"empty secrets", func(e *framing.Epoch) { e.Secrets = &framing.Secrets{Suite: f.suite} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fe := f.epoch(f.tree(t))
			tc.edit(fe)
			_, _, err := fe.UnprotectPrivate(pm)
			expectErr(t, f, err, framing.ErrNotConfigured)
			// Empty raw secrets look like a wrong key to a bool-returning
			// VerifyMembershipTag.
			if tc.name != "secret tree" && tc.name != "empty secrets" {
				_, err := fe.UnprotectPublic(pub)
				expectErr(t, f, err, framing.ErrNotConfigured)
			}
		})
	}
	var nilEpoch *framing.Epoch
	_, err := nilEpoch.Sign(wire.WireFormatPrivateMessage, f.content(t, wire.ContentTypeApplication, nil), f.key)
	expectErr(t, f, err, framing.ErrNotConfigured)
}

// sealRaw encrypts an arbitrary plaintext as the content of a
// PrivateMessage from senderLeaf, with the primitives directly, so that
// tests can send what ProtectPrivate never would.
func sealRaw(t *testing.T, f *fixture, tree *secrettree.Tree, ct wire.ContentType, plaintext []byte) *wire.PrivateMessage {
	t.Helper()
	rt := secrettree.Handshake
	if ct == wire.ContentTypeApplication {
		rt = secrettree.Application
	}
	kn, err := tree.NextKey(senderLeaf, rt)
	if err != nil {
		t.Fatal(err)
	}
	pm := &wire.PrivateMessage{GroupID: f.v.GroupID, Epoch: f.v.Epoch, ContentType: ct, AuthenticatedData: []byte{}}
	pm.Ciphertext, err = f.suite.Seal(kn.Key.Bytes(), kn.Nonce.Bytes(), pm.ContentAAD().Bytes(), plaintext)
	if err != nil {
		t.Fatal(err)
	}
	key, nonce, err := keyschedule.SenderDataKeyNonce(f.suite, secret.Copy(f.v.SenderDataSecret), pm.Ciphertext)
	if err != nil {
		t.Fatal(err)
	}
	sd := wire.SenderData{LeafIndex: senderLeaf, Generation: kn.Generation}
	pm.EncryptedSenderData, err = f.suite.Seal(key.Bytes(), nonce.Bytes(), pm.SenderDataAAD().Bytes(), sd.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return reparsePriv(t, pm)
}

func TestMalformedPlaintext(t *testing.T) {
	f := suite1(t)
	fe := f.epoch(f.tree(t))
	ac, err := fe.Sign(wire.WireFormatPrivateMessage, f.content(t, wire.ContentTypeApplication, []byte("hi")), f.key)
	if err != nil {
		t.Fatal(err)
	}
	good := (&wire.PrivateMessageContent{ContentType: wire.ContentTypeApplication, ApplicationData: []byte("hi"), Auth: ac.Auth}).Bytes()
	for _, tc := range []struct {
		name      string
		plaintext []byte
		want      error
	}{
		{"non-zero padding", append(append([]byte{}, good...), 0, 0, 1), wire.ErrBadPadding},
		{"truncated", good[:len(good)-1], codec.ErrMalformed},
		{"empty", nil, codec.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sender := f.tree(t)
			pm := sealRaw(t, f, sender, wire.ContentTypeApplication, tc.plaintext)
			_, _, err := f.epoch(f.tree(t)).UnprotectPrivate(pm)
			expectErr(t, f, err, tc.want)
		})
	}
	t.Run("zero padding, manual sealing", func(t *testing.T) {
		pm := sealRaw(t, f, f.tree(t), wire.ContentTypeApplication, append(append([]byte{}, good...), 0, 0, 0))
		got, _, err := f.epoch(f.tree(t)).UnprotectPrivate(pm)
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Content.ApplicationData) != "hi" {
			t.Errorf("data %q", got.Content.ApplicationData)
		}
	})
}

func TestReuseGuard(t *testing.T) {
	// The same content at the same generation with two reuse guards gives
	// two ciphertexts, both decryptable, and the guard is the one read.
	f := suite1(t)
	var cts [][]byte
	for _, g := range []byte{0, 0xA5} {
		sender := f.epoch(f.tree(t))
		sender.Rand = bytes.NewReader([]byte{g, g, g, g})
		pm := protectApp(t, f, sender, []byte("same"))
		_, sd, err := f.epoch(f.tree(t)).UnprotectPrivate(pm)
		if err != nil {
			t.Fatal(err)
		}
		if sd.ReuseGuard != [4]byte{g, g, g, g} || sd.Generation != 0 {
			t.Errorf("sender data %+v", sd)
		}
		cts = append(cts, pm.Ciphertext)
	}
	if bytes.Equal(cts[0], cts[1]) {
		t.Error("the reuse guard does not change the nonce")
	}
	sender := f.epoch(f.tree(t))
	sender.Rand = bytes.NewReader(nil)
	ac, err := sender.Sign(wire.WireFormatPrivateMessage, f.content(t, wire.ContentTypeApplication, nil), f.key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sender.ProtectPrivate(ac, 0); err == nil {
		t.Error("ProtectPrivate succeeded without randomness")
	}
}

// TestNilInputs checks that nil arguments are errors, not panics.
func TestNilInputs(t *testing.T) {
	f := suite1(t)
	fe := f.epoch(f.tree(t))
	c := f.content(t, wire.ContentTypeApplication, []byte("x"))
	if _, err := fe.Sign(wire.WireFormatPrivateMessage, c, nil); err == nil {
		t.Error("Sign with a nil key succeeded")
	}
	_, err := fe.Sign(wire.WireFormatPrivateMessage, nil, f.key)
	expectErr(t, f, err, framing.ErrContentType)
	_, err = fe.ProtectPublic(nil)
	expectErr(t, f, err, framing.ErrContentType)
	_, err = fe.ProtectPrivate(nil, 0)
	expectErr(t, f, err, framing.ErrContentType)
	_, err = fe.UnprotectPublic(nil)
	expectErr(t, f, err, framing.ErrWireFormat)
	_, _, err = fe.UnprotectPrivate(nil)
	expectErr(t, f, err, framing.ErrWireFormat)
	expectErr(t, f, fe.Verify(nil, f.v.SignaturePub), framing.ErrContentType)
	_, _, err = fe.Unprotect(&wire.MLSMessage{WireFormat: wire.WireFormatPrivateMessage})
	expectErr(t, f, err, framing.ErrWireFormat)
	var none *framing.Epoch
	_, _, err = none.Unprotect(wire.WrapPrivateMessage(&wire.PrivateMessage{}))
	expectErr(t, f, err, framing.ErrNotConfigured)
	_, err = none.ProtectPublic(&wire.AuthenticatedContent{})
	expectErr(t, f, err, framing.ErrNotConfigured)
	expectErr(t, f, none.Verify(&wire.AuthenticatedContent{}, nil), framing.ErrNotConfigured)
}
