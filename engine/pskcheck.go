package engine

import (
	"bytes"
	"context"
	"errors"

	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// HasPSK reports whether this member can resolve the PSK that id names:
// a resumption PSK of an epoch of this group that the group still keeps
// (§8.6, Config.NumberOfResumptionPSKs), or an external PSK from
// Config.PSKs or the store (StorePSK). The psk_nonce is not looked at.
//
// ProposeExternalPSK and ProposeResumptionPSK do not check this: an
// unknown PSK does not make a PreSharedKey proposal invalid (§12.1.4), and
// a committer leaves out the PSK proposals it cannot resolve. A caller
// that wants to refuse a proposal no commit would carry asks first.
func (h *Group) HasPSK(ctx context.Context, id *wire.PreSharedKeyID) (bool, error) {
	if id == nil {
		return false, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.g == nil {
		return false, h.err
	}
	if id.PSKType == wire.PSKTypeResumption && bytes.Equal(id.PSKGroupID, h.g.GroupID()) {
		s, err := h.g.ResumptionPSK(id.PSKEpoch)
		s.Clear()
		return err == nil, nil
	}
	if h.cfg.Config.PSKs == nil {
		return false, nil
	}
	h.opc.ctx = ctx
	defer func() { h.opc.ctx = nil }()
	s, err := h.cfg.Config.PSKs(id)
	defer s.Clear()
	switch {
	case errors.Is(err, group.ErrUnknownPSK):
		return false, nil
	case err != nil:
		return false, err
	}
	return s.Len() > 0, nil
}
