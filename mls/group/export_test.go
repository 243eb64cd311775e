package group

import (
	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/framing"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// ForgeMessage is a test hook: it builds a message of g's current epoch
// that a misbehaving member could send, bypassing every check of the
// sending side. content gets g's group id and epoch unless set; it is
// signed with key and protected with g's keys as wf; a commit gets tag as
// its confirmation tag.
func ForgeMessage(g *Group, wf wire.WireFormat, content wire.FramedContent, key *ciphersuite.SigningKey, tag []byte) (*wire.MLSMessage, error) {
	if content.GroupID == nil {
		content.GroupID = g.ctx.GroupID
		content.Epoch = g.ctx.Epoch
	}
	if content.AuthenticatedData == nil {
		content.AuthenticatedData = []byte{}
	}
	ctx := g.ctx
	ctx.GroupID, ctx.Epoch = content.GroupID, content.Epoch
	fe := &framing.Epoch{Suite: g.suite, Context: &ctx}
	ac, err := fe.Sign(wf, &content, key)
	if err != nil {
		return nil, err
	}
	ac.Auth.ConfirmationTag = tag
	if wf == wire.WireFormatPublicMessage {
		fe.Secrets = &senderDataSecrets{suite: g.suite, senderData: g.cur.senderData, current: g.secrets}
		pm, err := fe.ProtectPublic(ac)
		if err != nil {
			return nil, err
		}
		return wire.WrapPublicMessage(pm), nil
	}
	sds := &senderDataSecrets{suite: g.suite, senderData: g.cur.senderData, current: g.secrets}
	pm, err := protectPrivate(g.suite, ac, 0, g.cur.tree, sds, g.cfg.rand())
	if err != nil {
		return nil, err
	}
	return wire.WrapPrivateMessage(pm), nil
}

// SigningKey is a test hook returning the member's signing key.
func (g *Group) SigningKey() *ciphersuite.SigningKey { return g.signer }
