package framing_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/framing"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// TestVectors protects the proposal, commit and application data of every
// message-protection.json case, for all seven suites, and checks what the
// conformance verifier (the conformance package's TestOfficialVectors, which
// unprotects the case's messages and round-trips each value once) does not:
// an EdDSA PublicMessage is the vector's byte for byte, application data
// never goes out as a PublicMessage, and a PrivateMessage carries the sender
// in its sender data and round-trips its whole AuthenticatedContent at
// several paddings.
func TestVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		f := newFixture(t, v)
		t.Run(f.suite.ID().String(), func(t *testing.T) {
			for _, k := range []struct {
				name string
				ct   wire.ContentType
				raw  []byte
				pub  []byte
			}{
				{"proposal", wire.ContentTypeProposal, v.Proposal, v.ProposalPub},
				{"commit", wire.ContentTypeCommit, v.Commit, v.CommitPub},
				{"application", wire.ContentTypeApplication, v.Application, nil},
			} {
				t.Run(k.name, func(t *testing.T) {
					t.Run("protect pub", func(t *testing.T) { testProtectPublic(t, f, k.ct, k.raw, k.pub) })
					t.Run("protect priv", func(t *testing.T) {
						for _, padding := range []int{0, 1, 31, 1000} {
							testProtectPrivate(t, f, k.ct, k.raw, padding)
						}
					})
				})
			}
		})
	}
}

// unprotectBytes decodes b as an MLSMessage of wire format wf, unprotects
// it and checks the sender.
func unprotectBytes(t *testing.T, fe *framing.Epoch, b []byte, wf wire.WireFormat) *wire.AuthenticatedContent {
	t.Helper()
	m, err := wire.UnmarshalMLSMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	ac, sd, err := fe.Unprotect(m)
	if err != nil {
		t.Fatalf("Unprotect: %v", err)
	}
	if ac.WireFormat != wf {
		t.Errorf("wire format %v, want %v", ac.WireFormat, wf)
	}
	if s := ac.Content.Sender; s.SenderType != wire.SenderTypeMember || s.LeafIndex != senderLeaf {
		t.Errorf("sender %+v, want member %d", s, senderLeaf)
	}
	if (sd != nil) != (wf == wire.WireFormatPrivateMessage) {
		t.Errorf("sender data %v for %v", sd, wf)
	}
	if sd != nil && sd.LeafIndex != senderLeaf {
		t.Errorf("sender data leaf %d", sd.LeafIndex)
	}
	return ac
}

func checkBody(t *testing.T, ac *wire.AuthenticatedContent, raw []byte) {
	t.Helper()
	if got := body(t, ac); !bytes.Equal(got, raw) {
		t.Errorf("content %x, want %x", got, raw)
	}
}

func testProtectPublic(t *testing.T, f *fixture, ct wire.ContentType, raw, vectorPub []byte) {
	fe := f.epoch(f.tree(t))
	content := f.content(t, ct, raw)
	if ct == wire.ContentTypeApplication {
		if _, err := fe.Sign(wire.WireFormatPublicMessage, content, f.key); !errors.Is(err, framing.ErrApplicationAsPublic) {
			t.Errorf("Sign public application: %v, want ErrApplicationAsPublic", err)
		}
		// Even content signed otherwise must not go out as public.
		ac, err := fe.Sign(wire.WireFormatPrivateMessage, content, f.key)
		if err != nil {
			t.Fatal(err)
		}
		ac.WireFormat = wire.WireFormatPublicMessage
		if _, err := fe.ProtectPublic(ac); !errors.Is(err, framing.ErrApplicationAsPublic) {
			t.Errorf("ProtectPublic application: %v, want ErrApplicationAsPublic", err)
		}
		return
	}
	ac, err := fe.Sign(wire.WireFormatPublicMessage, content, f.key)
	if err != nil {
		t.Fatal(err)
	}
	if ct == wire.ContentTypeCommit {
		ac.Auth.ConfirmationTag = f.confirmationTag(t)
	}
	pm, err := fe.ProtectPublic(ac)
	if err != nil {
		t.Fatal(err)
	}
	b, err := wire.Marshal(wire.WrapPublicMessage(pm))
	if err != nil {
		t.Fatal(err)
	}
	got := unprotectBytes(t, fe, b, wire.WireFormatPublicMessage)
	checkBody(t, got, raw)
	// EdDSA signatures are deterministic: the message is the vector's.
	switch f.suite.ID() {
	case ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, ciphersuite.MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519,
		ciphersuite.MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448, ciphersuite.MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448:
		if !bytes.Equal(b, vectorPub) {
			t.Errorf("EdDSA PublicMessage differs from the vector's")
		}
	}
}

func testProtectPrivate(t *testing.T, f *fixture, ct wire.ContentType, raw []byte, padding int) {
	sender := f.epoch(f.tree(t))
	receiver := f.epoch(f.tree(t))
	ac, err := sender.Sign(wire.WireFormatPrivateMessage, f.content(t, ct, raw), f.key)
	if err != nil {
		t.Fatal(err)
	}
	if ct == wire.ContentTypeCommit {
		ac.Auth.ConfirmationTag = f.confirmationTag(t)
	}
	pm, err := sender.ProtectPrivate(ac, padding)
	if err != nil {
		t.Fatal(err)
	}
	b, err := wire.Marshal(wire.WrapPrivateMessage(pm))
	if err != nil {
		t.Fatal(err)
	}
	got := unprotectBytes(t, receiver, b, wire.WireFormatPrivateMessage)
	checkBody(t, got, raw)
	if !bytes.Equal(got.Bytes(), ac.Bytes()) {
		t.Errorf("padding %d: AuthenticatedContent does not round-trip", padding)
	}
}
