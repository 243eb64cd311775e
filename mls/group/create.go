package group

import (
	"fmt"
	"io"
	"slices"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/keyschedule"
	"github.com/mlsengine/mlsengine/mls/ratchettree"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treekem"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// Create creates a group with one member, the caller (§11), in suite, with
// the given group id (nil: KDF.Nh random bytes) and GroupContext
// extensions. cfg.RequiredCapabilities and cfg.ExternalSenders are added to
// the extensions. The group is in epoch 0; add members with ProposeAdd or
// Commit(&CommitOptions{Proposals: ...}).
func Create(cfg *Config, suiteID ciphersuite.ID, id *Identity, groupID []byte, extensions []wire.Extension) (*Group, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	suite, err := ciphersuite.Lookup(suiteID)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	if err := id.check(suite); err != nil {
		return nil, err
	}
	if groupID == nil {
		groupID = make([]byte, suite.HashLen())
		if _, err := io.ReadFull(cfg.rand(), groupID); err != nil {
			return nil, fmt.Errorf("group: reading randomness: %w", err)
		}
	}
	exts := cloneExtensions(extensions)
	if cfg.RequiredCapabilities != nil && wire.FindExtension(exts, wire.ExtensionTypeRequiredCapabilities) == nil {
		exts = append(exts, wire.RequiredCapabilitiesExtension(cfg.RequiredCapabilities))
	}
	if len(cfg.ExternalSenders) > 0 && wire.FindExtension(exts, wire.ExtensionTypeExternalSenders) == nil {
		exts = append(exts, wire.ExternalSendersExtension(cfg.ExternalSenders))
	}
	if err := checkGroupContextExtensions(exts); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}

	// §11: a one-member tree with the creator's leaf.
	leafKey, err := suite.GenerateKeyPair(cfg.rand())
	if err != nil {
		return nil, err
	}
	now := cfg.creationTime()
	ln := &wire.LeafNode{
		EncryptionKey:  leafKey.PublicKey(),
		SignatureKey:   id.SigningKey.PublicKey(),
		Credential:     id.Credential,
		Capabilities:   id.capabilities(suiteID),
		LeafNodeSource: wire.LeafNodeSourceKeyPackage,
		Lifetime: &wire.Lifetime{
			NotBefore: uint64(max(now.Add(-keyPackageClockSkew).Unix(), 0)),
			NotAfter:  uint64(max(now.Add(cfg.keyPackageLifetime()).Unix(), 0)),
		},
		Extensions: leafExtensions(id),
	}
	if err := supportsGroup(&ln.Capabilities, exts, requiredCapabilities(exts)); err != nil {
		return nil, fmt.Errorf("%w: the creator's capabilities: %w", ErrInvalidArgument, err)
	}
	if err := signLeafNode(suite, id.SigningKey, ln, nil, 0); err != nil {
		return nil, err
	}
	tree, err := ratchettree.New(suite, ln)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	priv, err := treekem.NewPrivateState(suite, 0, leafKey, nil)
	if err != nil {
		return nil, err
	}

	g := newGroup(cfg, suite, id.SigningKey)
	g.ctx = wire.GroupContext{
		Version:                 wire.ProtocolVersionMLS10,
		CipherSuite:             uint16(suiteID),
		GroupID:                 slices.Clone(groupID),
		Epoch:                   0,
		TreeHash:                tree.TreeHash(),
		ConfirmedTranscriptHash: []byte{},
		Extensions:              exts,
	}
	g.tree = tree

	// §11: the epoch's secrets from a fresh random init secret, and the
	// interim transcript hash from a confirmation tag over the empty
	// confirmed transcript hash.
	init, err := keyschedule.NewRandomInitSecret(suite, cfg.rand())
	if err != nil {
		return nil, err
	}
	defer init.Clear()
	ctxBytes := g.ctx.Bytes()
	joiner, err := init.Joiner(secret.Secret{}, ctxBytes)
	if err != nil {
		return nil, err
	}
	defer joiner.Clear()
	member, err := joiner.WithPSK(secret.Secret{})
	if err != nil {
		return nil, err
	}
	defer member.Clear()
	epoch, err := member.Epoch(ctxBytes)
	if err != nil {
		return nil, err
	}
	if g.confTag, err = epoch.ConfirmationTag(g.ctx.ConfirmedTranscriptHash); err != nil {
		epoch.Clear()
		return nil, err
	}
	if g.interim, err = keyschedule.InterimTranscriptHash(suite, g.ctx.ConfirmedTranscriptHash, g.confTag); err != nil {
		epoch.Clear()
		return nil, err
	}
	if err := g.installEpoch(epoch, priv); err != nil {
		return nil, err
	}
	return g, nil
}

func newGroup(cfg *Config, suite *ciphersuite.Suite, signer *ciphersuite.SigningKey) *Group {
	return &Group{cfg: *cfg, suite: suite, signer: signer, status: StatusActive, log: newChangeLog()}
}

// installEpoch makes a freshly derived epoch the group's first one (created
// or joined): it takes the epoch's secrets and the member's private state,
// and logs the whole state for storage.
func (g *Group) installEpoch(epoch *keyschedule.Epoch, priv *treekem.PrivateState) error {
	secrets, senderData, resumption, encryption := takeEpoch(epoch)
	return g.installEpochSecrets(secrets, senderData, resumption, encryption, priv)
}
