package conformance

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/framing"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/secrettree"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// mpSender is the leaf of the sender of every message-protection message;
// the group has two members.
const (
	mpSender  = 1
	mpMembers = 2
)

// verifyMessageProtection checks one message-protection case (RFC 9420
// §6.1-§6.3): for the proposal, the commit and the application data, the
// pub message unprotects with membership_key and signature_pub to the raw
// value; the raw value protected as a PublicMessage with membership_key and
// signature_priv unprotects again (application data must be refused); the
// priv message unprotects with a 2-member secret tree from
// encryption_secret, sender_data_secret and signature_pub; and the raw value
// protected as a PrivateMessage unprotects again. Commits carry the vector's
// confirmation_tag, which cannot be recomputed without the confirmation key.
func verifyMessageProtection(raw json.RawMessage) error {
	var tc struct {
		CipherSuite             uint16   `json:"cipher_suite"`
		GroupID                 HexBytes `json:"group_id"`
		Epoch                   uint64   `json:"epoch"`
		TreeHash                HexBytes `json:"tree_hash"`
		ConfirmedTranscriptHash HexBytes `json:"confirmed_transcript_hash"`
		SignaturePriv           HexBytes `json:"signature_priv"`
		SignaturePub            HexBytes `json:"signature_pub"`
		EncryptionSecret        HexBytes `json:"encryption_secret"`
		SenderDataSecret        HexBytes `json:"sender_data_secret"`
		MembershipKey           HexBytes `json:"membership_key"`
		Proposal                HexBytes `json:"proposal"`
		ProposalPub             HexBytes `json:"proposal_pub"`
		ProposalPriv            HexBytes `json:"proposal_priv"`
		Commit                  HexBytes `json:"commit"`
		CommitPub               HexBytes `json:"commit_pub"`
		CommitPriv              HexBytes `json:"commit_priv"`
		Application             HexBytes `json:"application"`
		ApplicationPriv         HexBytes `json:"application_priv"`
	}
	if err := decodeCase(raw, &tc); err != nil {
		return err
	}
	suite, err := ciphersuite.Lookup(ciphersuite.ID(tc.CipherSuite))
	if err != nil {
		return err
	}
	key, err := suite.ParseSigningKey(tc.SignaturePriv)
	if err != nil {
		return fmt.Errorf("signature_priv: %w", err)
	}
	gc := &wire.GroupContext{
		Version:                 wire.ProtocolVersionMLS10,
		CipherSuite:             tc.CipherSuite,
		GroupID:                 tc.GroupID,
		Epoch:                   tc.Epoch,
		TreeHash:                tc.TreeHash,
		ConfirmedTranscriptHash: tc.ConfirmedTranscriptHash,
		Extensions:              []wire.Extension{},
	}
	membershipKey := secret.Copy(tc.MembershipKey)
	senderDataSecret := secret.Copy(tc.SenderDataSecret)
	defer membershipKey.Clear()
	defer senderDataSecret.Clear()
	pub := []byte(tc.SignaturePub)
	// newEpoch returns the framing view of the case's epoch over a fresh
	// secret tree for 2 members.
	newEpoch := func() (*framing.Epoch, error) {
		tree, err := secrettree.New(suite, secret.Copy(tc.EncryptionSecret), mpMembers)
		if err != nil {
			return nil, err
		}
		return &framing.Epoch{
			Suite:   suite,
			Context: gc,
			Secrets: &framing.Secrets{
				Suite:            suite,
				MembershipKey:    membershipKey,
				SenderDataSecret: senderDataSecret,
			},
			SecretTree:   tree,
			IsMember:     func(l treemath.LeafIndex) bool { return l < mpMembers },
			SignatureKey: func(*wire.AuthenticatedContent) ([]byte, error) { return pub, nil },
		}, nil
	}

	var errs []error
	for _, k := range []struct {
		name      string
		ct        wire.ContentType
		raw       []byte
		pub, priv []byte
	}{
		{"proposal", wire.ContentTypeProposal, tc.Proposal, tc.ProposalPub, tc.ProposalPriv},
		{"commit", wire.ContentTypeCommit, tc.Commit, tc.CommitPub, tc.CommitPriv},
		{"application", wire.ContentTypeApplication, tc.Application, nil, tc.ApplicationPriv},
	} {
		content, err := mpContent(tc.GroupID, tc.Epoch, k.ct, k.raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", k.name, err))
			continue
		}
		check := func(step string, f func(fe *framing.Epoch) error) {
			fe, err := newEpoch()
			if err == nil {
				err = f(fe)
			}
			if fe != nil {
				fe.SecretTree.Clear()
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w", k.name, step, err))
			}
		}
		// The confirmation tag the case's commit carries, from the
		// decrypted priv message or else the pub one.
		var confirmationTag []byte

		if k.ct != wire.ContentTypeApplication {
			check("pub", func(fe *framing.Epoch) error {
				return mpUnprotect(fe, k.pub, wire.WireFormatPublicMessage, k.name+"_pub", k.raw)
			})
		}
		check("priv", func(fe *framing.Epoch) error {
			m, err := wire.UnmarshalMLSMessage(k.priv)
			if err != nil {
				return err
			}
			ac, err := mpUnprotectMessage(fe, m, wire.WireFormatPrivateMessage, k.name+"_priv", k.raw)
			if err == nil {
				confirmationTag = ac.Auth.ConfirmationTag
			}
			return err
		})
		if confirmationTag == nil && k.pub != nil {
			if pm, err := wire.UnmarshalMLSPublicMessage(k.pub); err == nil {
				confirmationTag = pm.Auth.ConfirmationTag
			}
		}
		check("protect as PublicMessage", func(fe *framing.Epoch) error {
			if k.ct == wire.ContentTypeApplication {
				_, err := fe.Sign(wire.WireFormatPublicMessage, content, key)
				if !errors.Is(err, framing.ErrApplicationAsPublic) {
					return fmt.Errorf("%w: application data protected as a PublicMessage (%v)", ErrMismatch, err)
				}
				return nil
			}
			ac, err := fe.Sign(wire.WireFormatPublicMessage, content, key)
			if err != nil {
				return err
			}
			ac.Auth.ConfirmationTag = confirmationTag
			pm, err := fe.ProtectPublic(ac)
			if err != nil {
				return err
			}
			b, err := wire.Marshal(wire.WrapPublicMessage(pm))
			if err != nil {
				return err
			}
			return mpUnprotect(fe, b, wire.WireFormatPublicMessage, "protected "+k.name, k.raw)
		})
		check("protect as PrivateMessage", func(sender *framing.Epoch) error {
			ac, err := sender.Sign(wire.WireFormatPrivateMessage, content, key)
			if err != nil {
				return err
			}
			ac.Auth.ConfirmationTag = confirmationTag
			pm, err := sender.ProtectPrivate(ac, 0)
			if err != nil {
				return err
			}
			b, err := wire.Marshal(wire.WrapPrivateMessage(pm))
			if err != nil {
				return err
			}
			// The receiver has its own tree: the sender's has moved past the
			// generation it used.
			receiver, err := newEpoch()
			if err != nil {
				return err
			}
			defer receiver.SecretTree.Clear()
			return mpUnprotect(receiver, b, wire.WireFormatPrivateMessage, "protected "+k.name, k.raw)
		})
	}
	return errors.Join(errs...)
}

// mpContent is the FramedContent of a raw proposal, commit or application
// data sent by the case's sender.
func mpContent(groupID []byte, epoch uint64, ct wire.ContentType, raw []byte) (*wire.FramedContent, error) {
	c := &wire.FramedContent{
		GroupID:           groupID,
		Epoch:             epoch,
		Sender:            wire.Sender{SenderType: wire.SenderTypeMember, LeafIndex: mpSender},
		AuthenticatedData: []byte{},
		ContentType:       ct,
	}
	var err error
	switch ct {
	case wire.ContentTypeProposal:
		c.Proposal, err = wire.Unmarshal[wire.Proposal](raw)
	case wire.ContentTypeCommit:
		c.Commit, err = wire.Unmarshal[wire.Commit](raw)
	default:
		c.ApplicationData = raw
	}
	return c, err
}

// mpUnprotect decodes b as an MLSMessage and unprotects it; see
// mpUnprotectMessage.
func mpUnprotect(fe *framing.Epoch, b []byte, wf wire.WireFormat, field string, want []byte) error {
	m, err := wire.UnmarshalMLSMessage(b)
	if err != nil {
		return err
	}
	_, err = mpUnprotectMessage(fe, m, wf, field, want)
	return err
}

// mpUnprotectMessage unprotects m, which must be of wire format wf, sent by
// the case's sender and carry the raw value want.
func mpUnprotectMessage(fe *framing.Epoch, m *wire.MLSMessage, wf wire.WireFormat, field string, want []byte) (*wire.AuthenticatedContent, error) {
	if m.WireFormat != wf {
		return nil, fmt.Errorf("%w: %s is a %v", ErrMismatch, field, m.WireFormat)
	}
	ac, _, err := fe.Unprotect(m)
	if err != nil {
		return nil, err
	}
	if s := ac.Content.Sender; s.SenderType != wire.SenderTypeMember || s.LeafIndex != mpSender {
		return nil, fmt.Errorf("%w: %s sender", ErrMismatch, field)
	}
	var got []byte
	switch ac.Content.ContentType {
	case wire.ContentTypeProposal:
		got, err = codec.Marshal(ac.Content.Proposal)
	case wire.ContentTypeCommit:
		got, err = codec.Marshal(ac.Content.Commit)
	default:
		got = ac.Content.ApplicationData
	}
	if err != nil {
		return nil, err
	}
	return ac, expectEqual(field, got, want)
}
