package jetstore

import (
	"context"
	"fmt"

	"github.com/mlsengine/mlsengine/storage"
)

// Report is what Check found for the member.
type Report struct {
	// Scopes is the number of heads (groups, tombstones, the client).
	Scopes int
	// Groups is the number of existing groups.
	Groups int
	// KeyMaterial is the number of live key-material records.
	KeyMaterial int
	// Orphans are key-material records that no existing scope owns or that
	// a committed unit deleted: secrets nothing will read, which must not
	// stay on the server.
	Orphans []string
	// Unfinished are scopes whose last unit's journal or creation is not
	// finished (normal for a moment after each unit; the sweeper finishes
	// those older than Options.Grace).
	Unfinished []string
	// Generations are the wrapping key generations held.
	Generations int
}

// Check reads every head and key-material record of the member and
// reports orphans and unfinished work. It changes nothing.
func (s *Store) Check(ctx context.Context) (*Report, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	ms, err := s.scan(ctx, s.l.keys, s.l.keysPre+s.l.member+".>")
	if err != nil {
		return nil, err
	}
	heads := map[storage.Scope]*head{}
	hseqs := map[storage.Scope]uint64{}
	for _, m := range ms {
		if p, ok := s.l.parse(m.Subject); ok && p.kind == 'h' {
			h, err := decodeHead(m.Data)
			if err != nil {
				return nil, err
			}
			heads[p.scope], hseqs[p.scope] = h, m.Sequence
		}
	}
	r := &Report{Scopes: len(heads)}
	_, gens := s.ring.generations()
	r.Generations = len(gens)
	for sc, h := range heads {
		if sc.IsGroup() && h.exists() {
			r.Groups++
		}
		if h.unfinished() {
			r.Unfinished = append(r.Unfinished, sc.String())
		}
	}
	for _, m := range ms {
		p, ok := s.l.parse(m.Subject)
		if !ok || p.kind != 'r' {
			continue
		}
		h := heads[p.scope]
		k := storage.Key{Scope: p.scope, Class: storage.KeyMaterial, Name: p.name}
		switch {
		case h.pendingUnder(m, hseqs[p.scope]):
			// A unit under way: counted in Unfinished.
		case p.scope.IsGroup() && !h.exists():
			r.Orphans = append(r.Orphans, fmt.Sprintf("%v (no such group)", k))
		case h != nil && h.Journal.kills(p.scope, k):
			r.Orphans = append(r.Orphans, fmt.Sprintf("%v (deleted, not erased yet)", k))
		default:
			r.KeyMaterial++
		}
	}
	// Key material of the client deleted by a group's unit is named in that
	// group's journal.
	for gs, h := range heads {
		if !gs.IsGroup() || h.Journal == nil {
			continue
		}
		for _, d := range h.Journal.Deletes {
			if d.Client && d.Class == storage.KeyMaterial {
				k := storage.Key{Scope: storage.ClientScope(), Class: storage.KeyMaterial, Name: d.Name}
				for _, m := range ms {
					if m.Subject == s.l.recordSubject(k) {
						r.Orphans = append(r.Orphans, fmt.Sprintf("%v (deleted by %v, not erased yet)", k, gs))
						r.KeyMaterial--
					}
				}
			}
		}
	}
	return r, nil
}
