package jetstore

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlsengine/mlsengine/storage"
)

// loadWrappingKeys reads the member's wrapping keys, creating the first.
func (s *Store) loadWrappingKeys(ctx context.Context) error {
	for attempt := 0; attempt < 4; attempt++ {
		ms, err := s.scan(ctx, s.l.keys, s.l.wrapFilter())
		if err != nil {
			return err
		}
		present := map[uint32]bool{}
		for _, m := range ms {
			gen, key, err := s.ring.unwrap(s.l.member, m.Data)
			if err != nil {
				return err
			}
			if p, ok := s.l.parse(m.Subject); !ok || p.index != strconv.FormatUint(uint64(gen), 10) {
				clear(key)
				return fmt.Errorf("%w: wrapping key record %s names another generation", ErrCorrupt, m.Subject)
			}
			present[gen] = true
			s.ring.install(gen, key, m.Sequence, m.Time)
		}
		if len(ms) > 0 {
			// Generations another process retired are gone for good.
			_, held := s.ring.generations()
			for g := range held {
				if !present[g] {
					s.ring.forget(g)
				}
			}
			return nil
		}
		if _, err := s.newGeneration(ctx, 1); err != nil && !isCASFailure(err) {
			return err
		}
	}
	return fmt.Errorf("jetstore: could not create or read the wrapping keys")
}

// newGeneration creates wrapping key generation gen (write-once).
func (s *Store) newGeneration(ctx context.Context, gen uint32) (uint64, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return 0, err
	}
	m := nats.NewMsg(s.l.wrapSubject(gen))
	m.Data = s.ring.wrap(s.l.member, gen, key)
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
	seq, err := s.publish(ctx, []*nats.Msg{m})
	if err != nil {
		clear(key)
		return 0, err
	}
	s.ring.install(gen, key, seq, time.Now())
	return seq, nil
}

// unseal opens a key-material message, reading the wrapping keys again
// if it was sealed under a generation another process started.
func (s *Store) unseal(ctx context.Context, m *jetstream.RawStreamMsg) ([]byte, error) {
	k := m.Subject[len(s.l.keysPre):]
	v, err := s.ring.open(k, m.Data)
	if err == nil {
		return v, nil
	}
	if sl, ok := parseSealed(m.Data); ok && !s.ring.holds(sl.gen) {
		if lerr := s.loadWrappingKeys(ctx); lerr != nil {
			return nil, lerr
		}
		return s.ring.open(k, m.Data)
	}
	return nil, err
}

// RotateWrappingKey starts a new wrapping key generation, which this Store
// seals with from now on; every Store of the member picks it up at its next
// sweep, or when it meets a value sealed under it. The older generations
// are retired by RetireWrappingKeys, which the sweeper calls once no Store
// can still be sealing under them.
func (s *Store) RotateWrappingKey(ctx context.Context) error {
	cur, _ := s.ring.generations()
	if _, err := s.newGeneration(ctx, cur+1); err != nil {
		if !isCASFailure(err) {
			return err
		}
		// Another process rotated at the same moment: use its key.
		return s.loadWrappingKeys(ctx)
	}
	return nil
}

// RetireWrappingKeys re-seals every live key-material record of the member
// under the current generation and erases the records of the older
// generations, if the current one was started more than minAge ago (so
// that every Store of the member has switched to it: the sweeper uses twice
// its interval plus Grace). After it, a copy of a value sealed under a
// retired generation (in a Raft log, a freed block, a backup) cannot be
// opened, even with the root key, once the erased wrapping key records are
// gone from those places too (see the package documentation for the
// windows).
//
// Each scope is re-sealed in batches conditional on its head, so a
// concurrent writer either commits first (and the batch is redone) or after.
// It returns how many records it re-sealed.
func (s *Store) RetireWrappingKeys(ctx context.Context, minAge time.Duration) (int, error) {
	if err := s.loadWrappingKeys(ctx); err != nil {
		return 0, err
	}
	cur, gens := s.ring.generations()
	if len(gens) < 2 || time.Since(s.ring.since(cur)) < minAge {
		return 0, nil
	}
	ms, err := s.scan(ctx, s.l.keys, s.l.keysPre+s.l.member+".>")
	if err != nil {
		return 0, err
	}
	scopes := map[storage.Scope]bool{}
	for _, m := range ms {
		p, ok := s.l.parse(m.Subject)
		if !ok || p.kind != 'r' {
			continue
		}
		if sl, ok := parseSealed(m.Data); ok && sl.gen != cur {
			scopes[p.scope] = true
		}
	}
	n := 0
	for sc := range scopes {
		k, err := s.reseal(ctx, sc, cur)
		n += k
		if err != nil {
			return n, err
		}
	}
	// Retire the old generations once nothing is sealed under them.
	ms, err = s.scan(ctx, s.l.keys, s.l.keysPre+s.l.member+".>")
	if err != nil {
		return n, err
	}
	used := map[uint32]bool{}
	for _, m := range ms {
		if p, ok := s.l.parse(m.Subject); ok && p.kind == 'r' {
			if sl, ok := parseSealed(m.Data); ok {
				used[sl.gen] = true
			}
		}
	}
	_, gens = s.ring.generations()
	for g, seq := range gens {
		if g == cur || used[g] {
			continue
		}
		if err := s.secureDelete(ctx, seq); err != nil {
			return n, err
		}
		s.ring.forget(g)
	}
	return n, nil
}

// reseal re-seals one scope's live records under generation cur.
func (s *Store) reseal(ctx context.Context, sc storage.Scope, cur uint32) (int, error) {
	unlock, err := s.lock(ctx, sc)
	if err != nil {
		return 0, err
	}
	defer unlock()
	for attempt := 0; attempt < 8; attempt++ {
		h, hseq, err := s.readHead(ctx, sc)
		if err != nil {
			return 0, err
		}
		if h != nil && (h.Creating != nil || h.Intent != nil || h.Abandoned != nil) {
			return 0, fmt.Errorf("jetstore: %v has a unit under way; rotate again later", sc)
		}
		if h != nil && (h.Journal != nil || h.Chunks > 0) {
			if err := s.finish(ctx, sc, h, hseq, nil); err != nil {
				return 0, err
			}
		}
		ms, err := s.scan(ctx, s.l.keys, s.l.prefixFilter(sc, storage.KeyMaterial, ""))
		if err != nil {
			return 0, err
		}
		var msgs []*nats.Msg
		for _, m := range ms {
			p, ok := s.l.parse(m.Subject)
			if !ok || p.kind != 'r' || m.Sequence > hseq && h != nil {
				continue
			}
			sl, ok := parseSealed(m.Data)
			if !ok || sl.gen == cur {
				continue
			}
			if h != nil && h.Journal.kills(sc, storage.Key{Scope: sc, Class: storage.KeyMaterial, Name: p.name}) {
				continue
			}
			k := m.Subject[len(s.l.keysPre):]
			v, err := s.ring.open(k, m.Data)
			if err != nil {
				return 0, err
			}
			sealed, err := s.ring.seal(k, v)
			clear(v)
			if err != nil {
				return 0, err
			}
			nm := nats.NewMsg(m.Subject)
			nm.Data = sealed
			nm.Header.Set(jetstream.ExpectedLastSubjSeqHeader, seqHeader(m.Sequence))
			msgs = append(msgs, nm)
			if len(msgs) == maxBatch-1 {
				break
			}
		}
		if len(msgs) == 0 {
			return 0, nil
		}
		batch := msgs
		if h != nil {
			hb, err := encodeHead(h)
			if err != nil {
				return 0, err
			}
			hm := nats.NewMsg(s.l.headSubject(sc))
			hm.Data = hb
			hm.Header.Set(jetstream.ExpectedLastSubjSeqHeader, seqHeader(hseq))
			batch = append(batch, hm)
		}
		_, err = s.publish(ctx, batch)
		s.dropCache(sc)
		if isCASFailure(err) {
			continue
		}
		if err != nil {
			return 0, s.readErr(ctx, err)
		}
		if len(msgs) < maxBatch-1 {
			return len(msgs), nil
		}
		attempt = 0
	}
	return 0, fmt.Errorf("jetstore: %v kept changing during re-sealing", sc)
}
