package group

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/keyschedule"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// resolvePSK finds the PSK an id names (§8.4): the resumption PSK of one of
// this group's kept epochs (§8.6), or what the operation's extra resolver
// (ReInit, branch) or Config.PSKs returns. The caller owns and clears the
// result.
func (g *Group) resolvePSK(id *wire.PreSharedKeyID, vo validateOptions) (secret.Secret, error) {
	if id.PSKType == wire.PSKTypeResumption && bytes.Equal(id.PSKGroupID, g.ctx.GroupID) {
		return g.ResumptionPSK(id.PSKEpoch)
	}
	for _, r := range []PSKResolver{vo.extraPSKs, g.cfg.PSKs} {
		if r == nil {
			continue
		}
		s, err := r(id)
		if err == nil {
			if s.Len() == 0 {
				return secret.Secret{}, fmt.Errorf("%w: empty PSK", ErrUnknownPSK)
			}
			return s, nil
		}
		if !errors.Is(err, ErrUnknownPSK) {
			return secret.Secret{}, fmt.Errorf("%w: %w", ErrUnknownPSK, err)
		}
	}
	return secret.Secret{}, fmt.Errorf("%w: %v PSK", ErrUnknownPSK, id.PSKType)
}

// pskSecret resolves psks in order and chains them into the psk_secret of
// the key schedule (§8.4). The PSKs themselves are cleared once used.
func (g *Group) pskSecret(psks []wire.PreSharedKeyID, vo validateOptions) (secret.Secret, error) {
	in := make([]keyschedule.PSK, 0, len(psks))
	defer func() {
		for i := range in {
			in[i].Secret.Clear()
		}
	}()
	for i := range psks {
		s, err := g.resolvePSK(&psks[i], vo)
		if err != nil {
			return secret.Secret{}, err
		}
		id, err := codec.Marshal(&psks[i])
		if err != nil {
			s.Clear()
			return secret.Secret{}, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		in = append(in, keyschedule.PSK{ID: id, Secret: s})
	}
	return keyschedule.PSKSecret(g.suite, in)
}

// trackingResolver wraps a resolver so that the secrets it hands to a
// caller that does not clear them (welcome.Open) can be cleared after.
type trackingResolver struct {
	resolve PSKResolver
	handed  []secret.Secret
}

func (t *trackingResolver) get(id *wire.PreSharedKeyID) (secret.Secret, error) {
	if t.resolve == nil {
		return secret.Secret{}, ErrUnknownPSK
	}
	s, err := t.resolve(id)
	if err == nil {
		t.handed = append(t.handed, s)
	}
	return s, err
}

func (t *trackingResolver) clear() {
	for i := range t.handed {
		t.handed[i].Clear()
	}
	t.handed = nil
}

// chainResolvers tries each resolver in turn.
func chainResolvers(rs ...PSKResolver) PSKResolver {
	return func(id *wire.PreSharedKeyID) (secret.Secret, error) {
		for _, r := range rs {
			if r == nil {
				continue
			}
			s, err := r(id)
			if err == nil {
				return s, nil
			}
			if !errors.Is(err, ErrUnknownPSK) {
				return secret.Secret{}, err
			}
		}
		return secret.Secret{}, ErrUnknownPSK
	}
}
