package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/storage"
)

// ExternalJoinOptions are the optional inputs of JoinExternal.
type ExternalJoinOptions = group.ExternalJoinOptions

// JoinExternal joins a group by external commit (RFC 9420 §12.4.3.2) from
// a GroupInfo message carrying the external_pub extension, stores the
// joiner's state in the new epoch and returns it with the commit to send.
// If the group does not accept the commit, delete the group and join again
// from a newer GroupInfo.
//
// A stored state of the same group is replaced when opts.Resync is set
// (the member lost sync, §12.4.3.2) or when it is inactive (the member was
// removed and rejoins, or the group was reinitialized); otherwise
// JoinExternal fails with ErrGroupExists. The old state is deleted first,
// then the new one stored, in two units, because old and new may hold key
// material under the same names; a crash between them leaves no state of
// the group, and the commit is not yet sent, so joining again is all it
// takes.
func JoinExternal(ctx context.Context, store storage.Backend, signer *ciphersuite.SigningKey, cfg *Config, cred wire.Credential, msg *wire.MLSMessage, opts *ExternalJoinOptions) (*Group, *wire.MLSMessage, error) {
	c := orDefault(cfg)
	if signer == nil {
		return nil, nil, fmt.Errorf("%w: nil signer", group.ErrInvalidArgument)
	}
	if msg == nil || msg.GroupInfo == nil {
		return nil, nil, fmt.Errorf("%w: not a GroupInfo", group.ErrInvalidGroupInfo)
	}
	// A stored state of the group is replaced when resyncing, or when it is
	// of no more use (the member was removed, or the group reinitialized).
	gid := msg.GroupInfo.GroupContext.GroupID
	replace := false
	switch old, err := LoadGroup(ctx, store, gid, &c); {
	case errors.Is(err, storage.ErrGroupNotFound):
	case err != nil && (opts == nil || opts.Resync == nil):
		return nil, nil, err
	case err != nil || (opts != nil && opts.Resync != nil) || !old.Active():
		replace = true
	default:
		return nil, nil, fmt.Errorf("engine: group %x: %w", gid, ErrGroupExists)
	}
	oc := withStore(store, &c, ctx)
	g, commit, err := group.JoinExternal(&c.Config, msg.GroupInfo, c.identity(signer, cred), opts)
	if err != nil {
		return nil, nil, err
	}
	h := newHandle(store, &c, oc, signer, g)
	if replace {
		if err := DeleteGroup(ctx, store, h.id); err != nil && !errors.Is(err, storage.ErrGroupNotFound) {
			ch := g.TakeChanges()
			ch.Clear()
			return nil, nil, err
		}
	}
	if err := h.create(ctx, true); err != nil {
		return nil, nil, err
	}
	h.log.Info("joined group by external commit", "group", h.logID(), "epoch", g.Epoch())
	return h, commit, nil
}

// ownIdentity is the member's current identity in the group, for the
// groups a ReInit or branch creates.
func (h *Group) ownIdentity(c *Config) *group.Identity {
	leaf := h.g.Member(h.g.OwnLeafIndex())
	id := c.identity(h.signer, wire.Credential{})
	if leaf != nil {
		id.Credential = leaf.Credential
	}
	return id
}

// successor stores a group that a ReInit or branch of h created, and the
// changes of h itself.
func (h *Group) successor(ctx context.Context, cfg *Config, op string, f func(g *group.Group, id *group.Identity, c *Config) (*group.Group, *group.CommitResult, error)) (*Group, *CommitResult, error) {
	c := orDefault(cfg)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.g == nil {
		return nil, nil, h.err
	}
	h.opc.ctx = ctx
	defer func() { h.opc.ctx = nil }()
	oc := withStore(h.store, &c, ctx)
	ng, r, err := f(h.g, h.ownIdentity(&c), &c)
	if err != nil {
		return nil, nil, err
	}
	res := &CommitResult{Commit: r.Commit, Welcome: r.Welcome, Epoch: ng.Epoch(), Added: r.Staged.Added()}
	if err := h.persistLocked(ctx, op, callID(op), nil); err != nil {
		ch := ng.TakeChanges()
		ch.Clear()
		return nil, nil, err
	}
	nh := newHandle(h.store, &c, oc, h.signer, ng)
	if err := nh.create(ctx, true); err != nil {
		return nil, nil, err
	}
	return nh, res, nil
}

// ReInit creates and stores the group that the committed ReInit asks for
// (§11.2), with this member as creator, committing Adds of keyPackages
// (the other members' new key packages) and the reinit resumption PSK. It
// returns the new group, in epoch 1, and the commit whose Welcome goes to
// the others (they join with JoinOptions.Predecessor set to this group).
func (h *Group) ReInit(ctx context.Context, cfg *Config, keyPackages []*wire.KeyPackage) (*Group, *CommitResult, error) {
	return h.successor(ctx, cfg, "reinit", func(g *group.Group, id *group.Identity, c *Config) (*group.Group, *group.CommitResult, error) {
		return g.ReInit(&c.Config, id, keyPackages)
	})
}

// Branch creates and stores a subgroup of this group (§11.3) with a new
// group id (cfg.GroupID, or random) and cfg.Extensions, adding the members
// of keyPackages with a branch resumption PSK.
func (h *Group) Branch(ctx context.Context, cfg *Config, keyPackages []*wire.KeyPackage) (*Group, *CommitResult, error) {
	return h.successor(ctx, cfg, "branch", func(g *group.Group, id *group.Identity, c *Config) (*group.Group, *group.CommitResult, error) {
		return g.Branch(&c.Config, id, c.GroupID, c.Extensions, keyPackages)
	})
}
