package jetstore

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/mlsengine/mlsengine/storage"
)

// Stats counts what a Store asked of the server, for benchmarks.
type Stats struct {
	Requests uint64 // round trips: reads, batches, erasures, purges
	Messages uint64 // messages written
	Bytes    uint64 // subject and payload bytes written
	Erased   uint64 // erasure requests
}

func (st *Stats) add(p *uint64, n uint64) { atomic.AddUint64(p, n) }

// Stats returns the counters since Open.
func (s *Store) Stats() Stats {
	return Stats{
		Requests: atomic.LoadUint64(&s.stats.Requests),
		Messages: atomic.LoadUint64(&s.stats.Messages),
		Bytes:    atomic.LoadUint64(&s.stats.Bytes),
		Erased:   atomic.LoadUint64(&s.stats.Erased),
	}
}

// Load implements storage.Backend. It reads the group's snapshot records
// and then its head and key material, each with batch direct gets (one
// request each for a group of up to 1,000 records), overlays the head's
// journal when the snapshot has not caught up with it, and drops key
// material the journal deleted but has not erased yet.
func (s *Store) Load(ctx context.Context, groupID []byte) (*storage.GroupRecords, error) {
	if err := storage.ValidateGroupID(groupID); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	sc := storage.GroupScope(groupID)
	for attempt := 0; ; attempt++ {
		g, retry, err := s.load(ctx, sc)
		if err == nil && retry && attempt < 8 {
			continue
		}
		if retry {
			return nil, fmt.Errorf("jetstore: %v kept changing while it was read", sc)
		}
		return g, err
	}
}

func (s *Store) load(ctx context.Context, sc storage.Scope) (g *storage.GroupRecords, retry bool, err error) {
	// Snapshot first: every application it reflects was committed before
	// the head read next.
	pub, err := s.scan(ctx, s.l.snap, s.l.scopeFilter(sc, storage.Public))
	if err != nil {
		return nil, false, err
	}
	km, err := s.scan(ctx, s.l.keys, s.l.scopeFilter(sc, storage.KeyMaterial))
	if err != nil {
		return nil, false, err
	}
	var h *head
	var hseq uint64
	var hTime time.Time
	var chunks []*jetstream.RawStreamMsg
	recs := map[string]*jetstream.RawStreamMsg{}
	for _, m := range km {
		p, ok := s.l.parse(m.Subject)
		if !ok {
			continue
		}
		switch p.kind {
		case 'h':
			// A scan that spans pages can see the head twice; the later
			// one is current.
			if m.Sequence > hseq {
				if h, err = decodeHead(m.Data); err != nil {
					return nil, false, err
				}
				hseq, hTime = m.Sequence, m.Time
			}
		case 'j':
			chunks = append(chunks, m)
		case 'r':
			recs[p.name] = m
		}
	}
	if !h.exists() {
		return nil, false, fmt.Errorf("%w: %v", storage.ErrGroupNotFound, sc)
	}
	kmSeqs := make(map[string]uint64, len(recs))
	for _, m := range recs {
		kmSeqs[m.Subject] = m.Sequence
	}
	s.setCacheHead(sc, h, hseq, kmSeqs)
	j, err := s.journalOf(ctx, sc, h, chunks)
	if err != nil {
		return nil, false, err
	}
	out := &storage.GroupRecords{Version: h.Version}
	// Public records: the snapshot, with the journal over it if the
	// snapshot's marker has not reached it.
	pubs := map[string][]byte{}
	var mk marker
	var mseq uint64
	for _, m := range pub {
		p, ok := s.l.parse(m.Subject)
		if !ok {
			continue
		}
		switch p.kind {
		case 'm':
			if m.Sequence > mseq {
				mseq = m.Sequence
				if err := msgpack.Unmarshal(m.Data, &mk); err != nil {
					return nil, false, fmt.Errorf("%w: marker: %v", ErrCorrupt, err)
				}
			}
		case 'r':
			if m.Header.Get("KV-Operation") != "" {
				delete(pubs, p.name)
			} else {
				pubs[p.name] = m.Data
			}
		}
	}
	pending := false
	switch {
	case mk.Applied == h.PubVersion && mk.Partial == 0:
	case j != nil && j.Version == h.PubVersion && (mk.Applied == j.PrevPub || mk.Partial == j.Version):
		pending = true
		j.overlayPublic(pubs, false, "")
	default:
		// The snapshot moved between the two reads (a unit committed and
		// applied after the snapshot was read and before the head was):
		// read again.
		return nil, true, nil
	}
	for n, v := range pubs {
		out.Records = append(out.Records, storage.Record{Key: storage.Key{Scope: sc, Class: storage.Public, Name: n}, Value: v})
	}
	for n, m := range recs {
		k := storage.Key{Scope: sc, Class: storage.KeyMaterial, Name: n}
		if h.pendingUnder(m, hseq) {
			pending = true
			continue
		}
		if j.kills(sc, k) {
			pending = true
			continue
		}
		v, err := s.unseal(ctx, m)
		if err != nil {
			return nil, false, err
		}
		out.Records = append(out.Records, storage.Record{Key: k, Value: v})
	}
	storage.SortRecords(out.Records)
	if (pending || h.Intent != nil || h.Abandoned != nil) && time.Since(hTime) > s.o.Grace {
		// A writer committed and did not finish: do it for it.
		if err := s.repair(ctx, sc, hseq); err != nil {
			s.log.Warn("jetstore: finishing an interrupted unit failed", "scope", sc.String(), "err", err)
		}
	}
	return out, false, nil
}

// setCacheHead records a head read at seq, with the group's key material
// if the read saw all of it (km, else nil).
func (s *Store) setCacheHead(sc storage.Scope, h *head, seq uint64, km map[string]uint64) {
	if c, ok := s.getCache(sc); ok && c.seq == seq && (c.km != nil || km == nil) {
		return
	}
	s.setCache(sc, cached{h: h, seq: seq, km: km})
}

// Version implements storage.Backend with one read of the head.
func (s *Store) Version(ctx context.Context, groupID []byte) (uint64, error) {
	if err := storage.ValidateGroupID(groupID); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	sc := storage.GroupScope(groupID)
	h, seq, err := s.readHead(ctx, sc)
	if err != nil {
		return 0, err
	}
	if !h.exists() {
		return 0, fmt.Errorf("%w: %v", storage.ErrGroupNotFound, sc)
	}
	s.setCacheHead(sc, h, seq, nil)
	return h.Version, nil
}

// Get implements storage.Backend.
func (s *Store) Get(ctx context.Context, k storage.Key) ([]byte, error) {
	if err := k.Validate(); err != nil {
		return nil, err
	}
	rs, err := s.GetMany(ctx, []storage.Key{k})
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("%w: %v", storage.ErrNotFound, k)
	}
	return rs[0].Value, nil
}

// GetMany implements storage.Backend: one request per class, each reading
// the records' last messages together with the heads of their scopes, so
// that key material whose deletion is committed but not yet erased is not
// returned.
func (s *Store) GetMany(ctx context.Context, keys []storage.Key) ([]storage.Record, error) {
	if err := storage.ValidateGetMany(keys); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var pubSubj, kmSubj []string
	want := map[string]storage.Key{}
	heads := map[string]storage.Scope{}
	for _, k := range keys {
		subj := s.l.recordSubject(k)
		if _, dup := want[subj]; dup {
			continue
		}
		want[subj] = k
		if k.Class == storage.Public {
			pubSubj = append(pubSubj, subj)
		} else {
			kmSubj = append(kmSubj, subj)
			hs := s.l.headSubject(k.Scope)
			if _, ok := heads[hs]; !ok {
				heads[hs] = k.Scope
				kmSubj = append(kmSubj, hs)
			}
		}
	}
	var out []storage.Record
	pm, err := s.getLast(ctx, s.l.snap, pubSubj)
	if err != nil {
		return nil, err
	}
	for _, m := range pm {
		if k, ok := want[m.Subject]; ok && m.Header.Get("KV-Operation") == "" {
			out = append(out, storage.Record{Key: k, Value: m.Data})
		}
	}
	km, err := s.getLast(ctx, s.l.keys, kmSubj)
	if err != nil {
		return nil, err
	}
	hs := map[storage.Scope]*head{}
	hseqs := map[storage.Scope]uint64{}
	js := map[storage.Scope]*journal{}
	for _, m := range km {
		if sc, ok := heads[m.Subject]; ok {
			h, err := decodeHead(m.Data)
			if err != nil {
				return nil, err
			}
			hs[sc], hseqs[sc] = h, m.Sequence
			// Key material a committed unit deleted may not be erased yet.
			if js[sc], err = s.journalOf(ctx, sc, h, nil); err != nil {
				return nil, err
			}
		}
	}
	for _, m := range km {
		k, ok := want[m.Subject]
		if !ok {
			continue
		}
		h := hs[k.Scope]
		if k.Scope.IsGroup() && !h.exists() || h.pendingUnder(m, hseqs[k.Scope]) {
			continue
		}
		if js[k.Scope].kills(k.Scope, k) {
			continue
		}
		v, err := s.unseal(ctx, m)
		if err != nil {
			return nil, err
		}
		out = append(out, storage.Record{Key: k, Value: v})
	}
	storage.SortRecords(out)
	return out, nil
}

// List implements storage.Backend.
func (s *Store) List(ctx context.Context, sc storage.Scope, c storage.Class, prefix string) ([]storage.Record, error) {
	if err := storage.ValidateList(sc, c, prefix); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if c == storage.Public {
		return s.listPublic(ctx, sc, prefix)
	}
	ms, err := s.scan(ctx, s.l.stream(c), s.l.prefixFilter(sc, c, prefix))
	if err != nil {
		return nil, err
	}
	var h *head
	var hseq uint64
	var j *journal
	if c == storage.KeyMaterial {
		if h, hseq, err = s.readHead(ctx, sc); err != nil {
			return nil, err
		}
		if sc.IsGroup() && !h.exists() {
			return nil, nil
		}
		if j, err = s.journalOf(ctx, sc, h, nil); err != nil {
			return nil, err
		}
	}
	latest := map[string]*jetstream.RawStreamMsg{}
	for _, m := range ms {
		if o := latest[m.Subject]; o == nil || m.Sequence > o.Sequence {
			latest[m.Subject] = m
		}
	}
	var out []storage.Record
	for _, m := range latest {
		p, ok := s.l.parse(m.Subject)
		if !ok || p.kind != 'r' {
			continue
		}
		k := storage.Key{Scope: sc, Class: c, Name: p.name}
		if c == storage.Public {
			if m.Header.Get("KV-Operation") != "" {
				continue
			}
			out = append(out, storage.Record{Key: k, Value: m.Data})
			continue
		}
		if j.kills(sc, k) || h.pendingUnder(m, hseq) {
			continue
		}
		v, err := s.unseal(ctx, m)
		if err != nil {
			return nil, err
		}
		out = append(out, storage.Record{Key: k, Value: v})
	}
	storage.SortRecords(out)
	return out, nil
}

// listPublic is List of public records. Their journal may be under way,
// written record by record after a claim of the scope's marker
// (writeClaimed): the marker is read before and after the records, and if
// a claim was there throughout, the claimed journal is laid over them; if
// the marker moved meanwhile, the records are read again.
func (s *Store) listPublic(ctx context.Context, sc storage.Scope, prefix string) ([]storage.Record, error) {
	for attempt := 0; ; attempt++ {
		mk, mseq, err := s.readMarker(ctx, sc)
		if err != nil {
			return nil, err
		}
		ms, err := s.scan(ctx, s.l.snap, s.l.prefixFilter(sc, storage.Public, prefix))
		if err != nil {
			return nil, err
		}
		latest := map[string]*jetstream.RawStreamMsg{}
		for _, m := range ms {
			if o := latest[m.Subject]; o == nil || m.Sequence > o.Sequence {
				latest[m.Subject] = m
			}
		}
		recs := map[string][]byte{}
		for _, m := range latest {
			if p, ok := s.l.parse(m.Subject); ok && p.kind == 'r' && m.Header.Get("KV-Operation") == "" {
				recs[p.name] = m.Data
			}
		}
		_, after, err := s.readMarker(ctx, sc)
		if err != nil {
			return nil, err
		}
		if after != mseq {
			if attempt < 8 {
				continue
			}
			return nil, fmt.Errorf("jetstore: %v kept changing while it was read", sc)
		}
		if mk.Partial != 0 {
			h, _, err := s.readHead(ctx, sc)
			if err != nil {
				return nil, err
			}
			j, err := s.journalOf(ctx, sc, h, nil)
			if err != nil {
				return nil, err
			}
			if j == nil || j.Version != mk.Partial {
				if attempt < 8 {
					continue // finished meanwhile: read again
				}
				return nil, fmt.Errorf("jetstore: %v kept changing while it was read", sc)
			}
			j.overlayPublic(recs, !sc.IsGroup(), prefix)
		}
		out := make([]storage.Record, 0, len(recs))
		for n, v := range recs {
			out = append(out, storage.Record{Key: storage.Key{Scope: sc, Class: storage.Public, Name: n}, Value: v})
		}
		storage.SortRecords(out)
		return out, nil
	}
}

// overlayPublic lays j's public changes to the group's records (or, if
// client, to the client-wide ones) whose names start with prefix over
// pubs, records by name.
func (j *journal) overlayPublic(pubs map[string][]byte, client bool, prefix string) {
	for _, p := range j.Prefixes {
		if p.Class == storage.Public && p.Client == client {
			for n := range pubs {
				if strings.HasPrefix(n, p.Name) {
					delete(pubs, n)
				}
			}
		}
	}
	for _, d := range j.Deletes {
		if d.Class == storage.Public && d.Client == client {
			delete(pubs, d.Name)
		}
	}
	for _, r := range j.Puts {
		if r.Client == client && strings.HasPrefix(r.Name, prefix) {
			pubs[r.Name] = r.Value
		}
	}
}
