package group

import (
	"fmt"
	"slices"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// ReInitProposal returns the committed ReInit that ended the group
// (StatusReInit), or nil.
func (g *Group) ReInitProposal() *wire.ReInit { return g.reinit }

// ReInit creates the group that the committed ReInit asks for (§11.2):
// its group id, version, cipher suite and extensions, with id as the
// creator, and commits Adds of keyPackages (one per other member of the
// old group) together with a resumption PSK of usage reinit naming this
// group's current epoch. It returns the new group, already in epoch 1,
// and the commit's result, whose Welcome goes to the other members; they
// join with Join and JoinOptions.Predecessor set to this group.
func (g *Group) ReInit(cfg *Config, id *Identity, keyPackages []*wire.KeyPackage) (*Group, *CommitResult, error) {
	if g.status != StatusReInit || g.reinit == nil {
		return nil, nil, fmt.Errorf("%w: no ReInit was committed", ErrInvalidArgument)
	}
	ri := g.reinit
	if ri.Version != wire.ProtocolVersionMLS10 {
		return nil, nil, fmt.Errorf("%w: version %v", ErrUnsupported, ri.Version)
	}
	return g.successor(cfg, ciphersuite.ID(ri.CipherSuite), id, ri.GroupID, ri.Extensions, keyPackages, wire.ResumptionPSKUsageReInit)
}

// Branch creates a subgroup of this group (§11.3) with a new group id and
// extensions, the same cipher suite, id as the creator, and Adds of
// keyPackages (members of this group), injecting a resumption PSK of usage
// branch that names this group's current epoch. It returns the new group,
// in epoch 1, and the commit's result with the Welcome for the added
// members, who join with JoinOptions.Predecessor set to this group.
func (g *Group) Branch(cfg *Config, id *Identity, groupID []byte, extensions []wire.Extension, keyPackages []*wire.KeyPackage) (*Group, *CommitResult, error) {
	if g.secrets == nil {
		return nil, nil, ErrInactive
	}
	return g.successor(cfg, g.suite.ID(), id, groupID, extensions, keyPackages, wire.ResumptionPSKUsageBranch)
}

func (g *Group) successor(cfg *Config, suite ciphersuite.ID, id *Identity, groupID []byte, exts []wire.Extension, kps []*wire.KeyPackage, usage wire.ResumptionPSKUsage) (*Group, *CommitResult, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	c := *cfg
	// The new group's extensions are exactly the given ones (§11.2).
	c.RequiredCapabilities, c.ExternalSenders = nil, nil
	ng, err := Create(&c, suite, id, groupID, exts)
	if err != nil {
		return nil, nil, err
	}
	ng.cfg.RequiredCapabilities, ng.cfg.ExternalSenders = cfg.RequiredCapabilities, cfg.ExternalSenders
	psk, err := ng.newPSKID(wire.PreSharedKeyID{
		PSKType:    wire.PSKTypeResumption,
		Usage:      usage,
		PSKGroupID: slices.Clone(g.ctx.GroupID),
		PSKEpoch:   g.ctx.Epoch,
	})
	if err != nil {
		return nil, nil, err
	}
	var props []*wire.Proposal
	for _, kp := range kps {
		props = append(props, &wire.Proposal{ProposalType: wire.ProposalTypeAdd, Add: &wire.Add{KeyPackage: *kp}})
	}
	props = append(props, &wire.Proposal{ProposalType: wire.ProposalTypePSK, PreSharedKey: &wire.PreSharedKey{PSK: psk}})
	res, err := ng.commit(&CommitOptions{Proposals: props}, validateOptions{allowUsage: usage, extraPSKs: g.PSKResolver()})
	if err != nil {
		return nil, nil, err
	}
	if err := ng.MergePendingCommit(); err != nil {
		return nil, nil, err
	}
	return ng, res, nil
}
