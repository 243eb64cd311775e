package group

import (
	"fmt"

	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// ExportSecret is MLS-Exporter(label, context, length) of the current
// epoch (§8.5): a secret the application derives for its own use, which
// every member of the epoch derives alike.
func (g *Group) ExportSecret(label string, context []byte, length int) (secret.Secret, error) {
	if g.secrets == nil {
		return secret.Secret{}, ErrInactive
	}
	if length < 0 || length > 0xffff {
		return secret.Secret{}, fmt.Errorf("%w: exporter length %d", ErrInvalidArgument, length)
	}
	return g.secrets.Export(label, context, length)
}

// Protect encrypts application data as a PrivateMessage of the current
// epoch (§6.3, §15), with authenticatedData sent in the clear but
// authenticated. It fails with ErrPendingProposals while proposals of the
// epoch are uncommitted (§12.4: commit first) and with ErrInactive once the
// member is removed or the group reinitialized.
func (g *Group) Protect(data, authenticatedData []byte) (*wire.MLSMessage, error) {
	if err := g.checkActive(); err != nil {
		return nil, err
	}
	if len(g.queue.list) > 0 {
		return nil, fmt.Errorf("%w: %d queued", ErrPendingProposals, len(g.queue.list))
	}
	if data == nil {
		data = []byte{}
	}
	content := g.memberContent(wire.ContentTypeApplication, authenticatedData)
	content.ApplicationData = data
	ac, err := g.sign(wire.WireFormatPrivateMessage, &content)
	if err != nil {
		return nil, err
	}
	return g.protectSigned(ac)
}
