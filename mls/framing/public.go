package framing

import (
	"fmt"

	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// encodeTBM encodes the AuthenticatedContentTBM of a PublicMessage (§6.2).
// Its first tbsLen bytes are the FramedContentTBS, which the signature
// covers, so one encoding serves both the membership tag and the
// signature.
func (e *Epoch) encodeTBM(content *wire.FramedContent, auth *wire.FramedContentAuthData) (tbm []byte, tbsLen int, err error) {
	w := codec.NewWriter(contentSize(content) + contextSize(e.Context) + len(auth.Signature) + len(auth.ConfirmationTag) + 12)
	e.appendTBS(w, wire.WireFormatPublicMessage, content)
	tbsLen = len(w.Bytes())
	a := *auth
	a.ContentType = content.ContentType
	a.MarshalMLS(w)
	tbm, err = w.Result()
	if err != nil {
		return nil, 0, fmt.Errorf("framing: encoding AuthenticatedContentTBM: %w", err)
	}
	return tbm, tbsLen, nil
}

// ProtectPublic turns ac, signed for wire format mls_public_message, into
// a PublicMessage (§6.2), adding the membership_tag computed with
// e.Secrets when the sender is a member. It refuses application data
// (ErrApplicationAsPublic) and a commit without a confirmation tag. The
// PublicMessage shares ac's slices.
//
// A member or new_member_commit sender's content must carry the group_id
// and epoch of e.Context; an external or new_member_proposal sender needs
// no Context, and is checked against it if there is one.
func (e *Epoch) ProtectPublic(ac *wire.AuthenticatedContent) (*wire.PublicMessage, error) {
	if err := e.checkSuite(); err != nil {
		return nil, err
	}
	if ac == nil {
		return nil, fmt.Errorf("%w: nil content", ErrContentType)
	}
	if ac.WireFormat != wire.WireFormatPublicMessage {
		return nil, fmt.Errorf("%w: content signed for %v", ErrWireFormat, ac.WireFormat)
	}
	c := &ac.Content
	if err := checkContent(c, wire.WireFormatPublicMessage); err != nil {
		return nil, err
	}
	if err := e.checkAuth(c.ContentType, &ac.Auth); err != nil {
		return nil, err
	}
	if e.Context != nil || signsContext(c.Sender.SenderType) {
		if err := e.checkGroup(c.GroupID, c.Epoch); err != nil {
			return nil, err
		}
	}
	pm := &wire.PublicMessage{Content: *c, Auth: ac.Auth}
	pm.Auth.ContentType = c.ContentType
	if c.Sender.SenderType != wire.SenderTypeMember {
		return pm, nil
	}
	if e.Secrets == nil {
		return nil, fmt.Errorf("%w: no membership key", ErrNotConfigured)
	}
	tbm, _, err := e.encodeTBM(&pm.Content, &pm.Auth)
	if err != nil {
		return nil, err
	}
	if pm.MembershipTag, err = e.Secrets.MembershipTag(tbm); err != nil {
		return nil, fmt.Errorf("framing: membership tag: %w", err)
	}
	return pm, nil
}

// UnprotectPublic authenticates a received PublicMessage (§6.2) and
// returns its AuthenticatedContent, which shares pm's slices. In order, it
// checks the group_id and epoch against e.Context, the content type and
// sender type, that a member sender's leaf holds a member (e.IsMember),
// the membership_tag of a member sender (in constant time), and then the
// signature with the key e.SignatureKey returns. The confirmation tag of a
// commit is only checked for size; verifying it is the caller's part.
func (e *Epoch) UnprotectPublic(pm *wire.PublicMessage) (*wire.AuthenticatedContent, error) {
	if err := e.checkReceiver(); err != nil {
		return nil, err
	}
	if pm == nil {
		return nil, fmt.Errorf("%w: nil message", ErrWireFormat)
	}
	c := &pm.Content
	if err := e.checkGroup(c.GroupID, c.Epoch); err != nil {
		return nil, err
	}
	if err := checkContent(c, wire.WireFormatPublicMessage); err != nil {
		return nil, err
	}
	if err := e.checkAuth(c.ContentType, &pm.Auth); err != nil {
		return nil, err
	}
	member := c.Sender.SenderType == wire.SenderTypeMember
	if member {
		if err := e.checkMember(c.Sender.LeafIndex); err != nil {
			return nil, err
		}
		if e.Secrets == nil {
			return nil, fmt.Errorf("%w: no membership key", ErrNotConfigured)
		}
	}
	tbm, tbsLen, err := e.encodeTBM(c, &pm.Auth)
	if err != nil {
		return nil, err
	}
	if member && !e.Secrets.VerifyMembershipTag(tbm, pm.MembershipTag) {
		return nil, ErrBadMembershipTag
	}
	ac := pm.AuthenticatedContent()
	ac.Auth.ContentType = c.ContentType
	if err := e.lookupAndVerify(ac, tbm[:tbsLen]); err != nil {
		return nil, err
	}
	return ac, nil
}
