package framing_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mlsengine/mlsengine/mls/framing"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/secrettree"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// TestOpenPrivateVectors opens the recorded application PrivateMessages
// with the key-source-agnostic functions, taking the content key from a
// secret tree by hand.
func TestOpenPrivateVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		f := newFixture(t, v)
		m, err := wire.UnmarshalMLSMessage(v.ApplicationPriv)
		if err != nil {
			t.Fatal(err)
		}
		pm := m.PrivateMessage
		sds := f.epoch(nil).Secrets
		sd, err := framing.OpenSenderData(f.suite, sds, pm)
		if err != nil {
			t.Fatalf("suite %#04x: %v", v.CipherSuite, err)
		}
		if sd.LeafIndex != senderLeaf {
			t.Fatalf("suite %#04x: sender leaf %d", v.CipherSuite, sd.LeafIndex)
		}
		kn, err := f.tree(t).Key(senderLeaf, secrettree.Application, sd.Generation)
		if err != nil {
			t.Fatal(err)
		}
		// A wrong key fails without touching anything.
		if _, err := framing.OpenPrivateContent(f.suite, pm, sd, secret.Zero(kn.Key.Len()), kn.Nonce); !errors.Is(err, framing.ErrDecryption) {
			t.Fatalf("suite %#04x: wrong key: %v", v.CipherSuite, err)
		}
		ac, err := framing.OpenPrivateContent(f.suite, pm, sd, kn.Key, kn.Nonce)
		if err != nil {
			t.Fatalf("suite %#04x: %v", v.CipherSuite, err)
		}
		if !bytes.Equal(ac.Content.ApplicationData, v.Application) {
			t.Fatalf("suite %#04x: application data differs", v.CipherSuite)
		}
		if err := f.epoch(nil).Verify(ac, v.SignaturePub); err != nil {
			t.Fatalf("suite %#04x: %v", v.CipherSuite, err)
		}
	}
}

// TestSealPrivateRoundTrip seals with an explicit key, pads to a block,
// and opens the result; a plaintext seals once.
func TestSealPrivateRoundTrip(t *testing.T) {
	f := newFixture(t, loadVectors(t)[0])
	fe := f.epoch(nil)
	ac, err := fe.Sign(wire.WireFormatPrivateMessage, f.content(t, wire.ContentTypeApplication, f.v.Application), f.key)
	if err != nil {
		t.Fatal(err)
	}
	p, err := framing.EncodePrivate(f.suite, ac, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Pad(-1); !errors.Is(err, framing.ErrPadding) {
		t.Fatalf("Pad(-1): %v", err)
	}
	const block = 64
	if err := p.Pad((block - p.Len()%block) % block); err != nil {
		t.Fatal(err)
	}
	if p.Len()%block != 0 {
		t.Fatalf("padded to %d bytes", p.Len())
	}
	kn, err := f.tree(t).NextKey(senderLeaf, secrettree.Application)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := p.Seal(fe.Secrets, kn.Generation, kn.Key, kn.Nonce, zeroReader{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pm.Ciphertext)%block != 16 { // padded plaintext and tag
		t.Fatalf("ciphertext of %d bytes", len(pm.Ciphertext))
	}
	if _, err := p.Seal(fe.Secrets, kn.Generation, kn.Key, kn.Nonce, zeroReader{}); err == nil {
		t.Fatal("second Seal succeeded")
	}
	sd, err := framing.OpenSenderData(f.suite, fe.Secrets, pm)
	if err != nil {
		t.Fatal(err)
	}
	if sd.LeafIndex != senderLeaf || sd.Generation != kn.Generation {
		t.Fatalf("sender data %+v", sd)
	}
	got, err := framing.OpenPrivateContent(f.suite, pm, sd, kn.Key, kn.Nonce)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Content.ApplicationData, f.v.Application) || !bytes.Equal(got.Auth.Signature, ac.Auth.Signature) {
		t.Fatal("content differs")
	}
	// The same message opens through an Epoch over a fresh tree.
	if _, _, err := f.epoch(f.tree(t)).UnprotectPrivate(pm); err != nil {
		t.Fatal(err)
	}
}

// TestPrivateNilArguments checks that the exported functions reject
// missing arguments instead of panicking.
func TestPrivateNilArguments(t *testing.T) {
	f := newFixture(t, loadVectors(t)[0])
	if _, err := framing.EncodePrivate(nil, nil, 0); !errors.Is(err, framing.ErrNotConfigured) {
		t.Fatalf("EncodePrivate(nil suite): %v", err)
	}
	if _, err := framing.EncodePrivate(f.suite, nil, 0); !errors.Is(err, framing.ErrContentType) {
		t.Fatalf("EncodePrivate(nil content): %v", err)
	}
	if _, err := framing.OpenSenderData(f.suite, nil, &wire.PrivateMessage{}); !errors.Is(err, framing.ErrNotConfigured) {
		t.Fatalf("OpenSenderData(nil secrets): %v", err)
	}
	if _, err := framing.OpenSenderData(f.suite, f.epoch(nil).Secrets, nil); !errors.Is(err, framing.ErrWireFormat) {
		t.Fatalf("OpenSenderData(nil message): %v", err)
	}
	if _, err := framing.OpenPrivateContent(f.suite, &wire.PrivateMessage{Ciphertext: make([]byte, 32)}, nil, secret.Secret{}, secret.Secret{}); !errors.Is(err, framing.ErrDecryption) {
		t.Fatalf("OpenPrivateContent(nil sender data): %v", err)
	}
	if _, err := framing.OpenPrivateContent(f.suite, &wire.PrivateMessage{Ciphertext: make([]byte, 32)}, &wire.SenderData{}, secret.Secret{}, secret.Secret{}); err == nil {
		t.Fatal("OpenPrivateContent with an empty key succeeded")
	}
}
