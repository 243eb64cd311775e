package group_test

import (
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

func addProposal(kp *group.KeyPackageBundle) *wire.Proposal {
	return &wire.Proposal{ProposalType: wire.ProposalTypeAdd, Add: &wire.Add{KeyPackage: *kp.KeyPackage}}
}

func removeProposal(l treemath.LeafIndex) *wire.Proposal {
	return &wire.Proposal{ProposalType: wire.ProposalTypeRemove, Remove: &wire.Remove{Removed: uint32(l)}}
}
