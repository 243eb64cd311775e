package framing_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/framing"
	"github.com/mlsengine/mlsengine/mls/secrettree"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// knownErrors are the sentinels every unprotect error must match one of.
var knownErrors = []error{
	codec.ErrMalformed,
	framing.ErrWrongGroup, framing.ErrWrongEpoch, framing.ErrWireFormat,
	framing.ErrContentType, framing.ErrInvalidSender, framing.ErrSenderNotMember,
	framing.ErrUnknownSender, framing.ErrBadMembershipTag, framing.ErrBadSignature,
	framing.ErrDecryption, framing.ErrConfirmationTag,
	secrettree.ErrGenerationConsumed, secrettree.ErrTooDistantInFuture,
}

// FuzzUnprotect feeds arbitrary bytes as an MLSMessage through
// unprotection with the keys of the first vector case (suite 1) and a
// fresh secret tree per input. Nothing may panic, every error must be
// typed, and whatever is accepted must belong to the group.
func FuzzUnprotect(f *testing.F) {
	vs := loadVectors(f)
	fx := newFixture(f, vs[0])
	for _, v := range vs {
		for _, b := range [][]byte{v.ProposalPub, v.ProposalPriv, v.CommitPub, v.CommitPriv, v.ApplicationPriv} {
			f.Add(b)
		}
	}
	// Messages of our own, padded, so that the fuzzer starts from more
	// shapes that decrypt.
	sender := fx.epoch(fx.tree(f))
	for _, padding := range []int{0, 7} {
		ac, err := sender.Sign(wire.WireFormatPrivateMessage, fx.content(f, wire.ContentTypeApplication, []byte("fuzz")), fx.key)
		if err != nil {
			f.Fatal(err)
		}
		pm, err := sender.ProtectPrivate(ac, padding)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(wire.WrapPrivateMessage(pm).Bytes())
	}
	// Fail rather than fuzz blind if the seeds no longer unprotect.
	for _, b := range [][]byte{vs[0].ProposalPub, vs[0].ApplicationPriv} {
		m, err := wire.UnmarshalMLSMessage(b)
		if err == nil {
			_, _, err = fx.epoch(fx.tree(f)).Unprotect(m)
		}
		if err != nil {
			f.Fatalf("seed does not unprotect: %v", err)
		}
	}

	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := wire.UnmarshalMLSMessage(b)
		if err != nil {
			if !errors.Is(err, codec.ErrMalformed) {
				t.Fatalf("untyped decoding error: %v", err)
			}
			return
		}
		ac, _, err := fx.epoch(fx.tree(t)).Unprotect(m)
		if err != nil {
			for _, k := range knownErrors {
				if errors.Is(err, k) {
					return
				}
			}
			t.Fatalf("untyped error: %v", err)
		}
		c := ac.Content
		if !bytes.Equal(c.GroupID, fx.v.GroupID) || c.Epoch != fx.v.Epoch {
			t.Fatal("accepted a message of another group or epoch")
		}
		if c.ContentType == wire.ContentTypeApplication && ac.WireFormat != wire.WireFormatPrivateMessage {
			t.Fatal("accepted public application data")
		}
		if c.Sender.SenderType == wire.SenderTypeMember && c.Sender.LeafIndex >= 2 {
			t.Fatal("accepted a message from a non-member leaf")
		}
	})
}
