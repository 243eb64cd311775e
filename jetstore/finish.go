package jetstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/mlsengine/mlsengine/storage"
)

// finish carries out the journal of the head h (at sequence hseq), reading
// its chunks if it has them.
func (s *Store) finish(ctx context.Context, sc storage.Scope, h *head, hseq uint64, km map[string]uint64) error {
	j, err := s.journalOf(ctx, sc, h, nil)
	if err != nil {
		return err
	}
	if j == nil {
		return nil
	}
	return s.finishJournal(ctx, sc, j, hseq, km)
}

// journalOf returns h's journal, from the head or from its chunk records
// (taken from msgs when the caller has scanned them, else read).
func (s *Store) journalOf(ctx context.Context, sc storage.Scope, h *head, msgs []*jetstream.RawStreamMsg) (*journal, error) {
	if h == nil {
		return nil, nil
	}
	if h.Chunks == 0 {
		return h.Journal, nil
	}
	subjects := make([]string, h.Chunks)
	for i := range subjects {
		subjects[i] = s.l.journalSubject(sc, i)
	}
	if msgs == nil {
		var err error
		if msgs, err = s.getLast(ctx, s.l.keys, subjects); err != nil {
			return nil, err
		}
	}
	parts := make(map[string][]byte, len(msgs))
	for _, m := range msgs {
		parts[m.Subject] = m.Data
	}
	var jb []byte
	for _, subj := range subjects {
		p, ok := parts[subj]
		if !ok {
			// Chunks are purged last when a journal is finished: it was.
			return nil, nil
		}
		jb = append(jb, p...)
	}
	return decodeJournal(jb)
}

// finishJournal applies j's public changes to the snapshot bucket and
// erases the key material it deleted. hseq is the sequence of the head that
// committed j: every record j deleted was written before it, so nothing at
// or after hseq is touched, which keeps a late finisher harmless.
//
// km, if not nil, is the group's key material as of hseq (see cached.km):
// erasure then needs no read for the group's records, and km loses what is
// erased.
func (s *Store) finishJournal(ctx context.Context, sc storage.Scope, j *journal, hseq uint64, km map[string]uint64) error {
	if j.hasPublic() {
		if err := s.applyPublic(ctx, sc, j); err != nil {
			return err
		}
	}
	if err := s.step("published"); err != nil {
		return err
	}
	if err := s.eraseDead(ctx, sc, j, hseq, km); err != nil {
		return err
	}
	// Journal chunks hold public values only; a purge is enough.
	if err := s.keys.Purge(ctx, jetstream.WithPurgeSubject(s.l.keysPre+s.l.scopeKey(sc)+".j.>"), jetstream.WithPurgeSequence(hseq)); err != nil {
		return s.readErr(ctx, err)
	}
	return nil
}

// readMarker reads a scope's snapshot marker.
func (s *Store) readMarker(ctx context.Context, sc storage.Scope) (marker, uint64, error) {
	ms, err := s.getLast(ctx, s.l.snap, []string{s.l.markerSubject(sc)})
	if err != nil || len(ms) == 0 {
		return marker{}, 0, err
	}
	var mk marker
	if err := msgpack.Unmarshal(ms[0].Data, &mk); err != nil {
		return marker{}, 0, fmt.Errorf("%w: marker: %v", ErrCorrupt, err)
	}
	return mk, ms[0].Sequence, nil
}

// applyPublic writes j's public changes to the snapshot bucket, in atomic
// batches that each end with the scope's marker, conditional on the marker's
// sequence: a finisher that lost the race to a later unit's writer is
// refused instead of overwriting newer records.
func (s *Store) applyPublic(ctx context.Context, sc storage.Scope, j *journal) error {
	for attempt := 0; ; attempt++ {
		mk, mseq, err := s.readMarker(ctx, sc)
		if err != nil {
			return err
		}
		if mk.Applied >= j.Version {
			return nil
		}
		err = s.writePublic(ctx, sc, j, mk, mseq)
		if err == nil || !isCASFailure(err) || attempt == 3 {
			return err
		}
	}
}

func (s *Store) writePublic(ctx context.Context, sc storage.Scope, j *journal, mk marker, mseq uint64) error {
	scopeOf := func(client bool) storage.Scope {
		if client {
			return storage.ClientScope()
		}
		return sc
	}
	if j.DeleteGroup {
		// Every record of the group was written by an application that
		// ended with a marker at or before mseq.
		if mseq == 0 {
			return nil
		}
		s.stats.add(&s.stats.Requests, 1)
		if err := s.snap.Purge(ctx, jetstream.WithPurgeSubject(s.l.scopeFilter(sc, storage.Public)), jetstream.WithPurgeSequence(mseq+1)); err != nil {
			return s.readErr(ctx, err)
		}
	}
	for _, p := range j.Prefixes {
		if p.Class != storage.Public {
			continue
		}
		opts := []jetstream.StreamPurgeOpt{jetstream.WithPurgeSubject(s.l.prefixFilter(scopeOf(p.Client), storage.Public, p.Name))}
		if !p.Client && mseq > 0 {
			opts = append(opts, jetstream.WithPurgeSequence(mseq+1))
		}
		s.stats.add(&s.stats.Requests, 1)
		if err := s.snap.Purge(ctx, opts...); err != nil {
			return s.readErr(ctx, err)
		}
	}
	var msgs []*nats.Msg
	for _, r := range j.Puts {
		m := nats.NewMsg(s.l.recordSubject(storage.Key{Scope: scopeOf(r.Client), Class: storage.Public, Name: r.Name}))
		m.Data = r.Value
		msgs = append(msgs, m)
	}
	for _, d := range j.Deletes {
		if d.Class != storage.Public {
			continue
		}
		m := nats.NewMsg(s.l.recordSubject(storage.Key{Scope: scopeOf(d.Client), Class: storage.Public, Name: d.Name}))
		m.Header.Set("KV-Operation", "DEL")
		msgs = append(msgs, m)
	}
	if j.DeleteGroup {
		// The group's marker went with the purge: a group created again
		// starts without one. The unit's client-wide changes need none.
		if len(msgs) == 0 {
			return nil
		}
		_, err := s.publish(ctx, msgs)
		return err
	}
	if s.o.Commit == CommitIntent && (!sc.IsGroup() || !j.touchesClientPublic()) {
		// (A group unit's client-wide public changes go in one batch: a
		// List of the client's records checks the client's marker only.)
		return s.writeClaimed(ctx, sc, j, mk, mseq, msgs)
	}
	for len(msgs) > 0 || mseq == 0 {
		n := min(len(msgs), maxBatch-1)
		batch := slices.Clone(msgs[:n])
		msgs = msgs[n:]
		next := marker{Applied: j.Version}
		if len(msgs) > 0 {
			next = marker{Applied: mk.Applied, Partial: j.Version}
		}
		mb, _ := msgpack.Marshal(next)
		m := nats.NewMsg(s.l.markerSubject(sc))
		m.Data = mb
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, seqHeader(mseq))
		batch = append(batch, m)
		seq, err := s.publish(ctx, batch)
		if err != nil {
			return err
		}
		mseq = seq
		if len(msgs) == 0 {
			break
		}
		if err := s.step("published-part"); err != nil {
			return err
		}
	}
	return nil
}

// touchesClientPublic reports whether j changes client-wide public records.
func (j *journal) touchesClientPublic() bool {
	for _, r := range j.Puts {
		if r.Client {
			return true
		}
	}
	for _, d := range j.Deletes {
		if d.Client && d.Class == storage.Public {
			return true
		}
	}
	for _, p := range j.Prefixes {
		if p.Client && p.Class == storage.Public {
			return true
		}
	}
	return false
}

// expectedLastSubjSeqSubject names the subject whose last sequence
// Nats-Expected-Last-Subject-Sequence checks, instead of the message's own.
const expectedLastSubjSeqSubject = "Nats-Expected-Last-Subject-Sequence-Subject"

// writeClaimed is writePublic without atomic batches, for a single-replica
// file store, where the server stages every batch in a file store of its
// own with fsyncs (about 5 ms for two messages, against a tenth of a
// millisecond for a publish). The finisher first claims the marker (Partial:
// j's version, conditional on the marker it read), so that Load overlays
// j on whatever part of it is written; then writes every record
// conditional on its claim still being the marker's last message, so that
// once another finisher claims the marker, this one writes nothing more;
// then sets the marker to j's version, conditional on its claim. A crash
// at any point leaves the claim, and the next finisher claims again and
// writes j whole.
func (s *Store) writeClaimed(ctx context.Context, sc storage.Scope, j *journal, mk marker, mseq uint64, msgs []*nats.Msg) error {
	setMarker := func(next marker, expect uint64) (uint64, error) {
		mb, _ := msgpack.Marshal(next)
		m := nats.NewMsg(s.l.markerSubject(sc))
		m.Data = mb
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, seqHeader(expect))
		return s.publish(ctx, []*nats.Msg{m})
	}
	if len(msgs) > 0 {
		claim, err := setMarker(marker{Applied: mk.Applied, Partial: j.Version}, mseq)
		if err != nil {
			return err
		}
		if err := s.step("claimed"); err != nil {
			return err
		}
		for _, m := range msgs {
			m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, seqHeader(claim))
			m.Header.Set(expectedLastSubjSeqSubject, s.l.markerSubject(sc))
		}
		for len(msgs) > 0 {
			n := min(len(msgs), maxBatch)
			if _, err := s.publishAll(ctx, msgs[:n]); err != nil {
				return err
			}
			msgs = msgs[n:]
		}
		if err := s.step("published-part"); err != nil {
			return err
		}
		mseq = claim
	}
	_, err := setMarker(marker{Applied: j.Version}, mseq)
	return err
}

// eraseDead erases the key material j deleted that was written before
// hseq, finding its sequences in km when that is known and with reads
// otherwise.
func (s *Store) eraseDead(ctx context.Context, sc storage.Scope, j *journal, hseq uint64, km map[string]uint64) error {
	var dead []uint64
	var subjects, filters []string
	for _, d := range j.Deletes {
		if d.Class != storage.KeyMaterial {
			continue
		}
		k := storage.Key{Scope: sc, Class: storage.KeyMaterial, Name: d.Name}
		if d.Client {
			k.Scope = storage.ClientScope()
		}
		subj := s.l.recordSubject(k)
		if km != nil && !d.Client {
			if seq, ok := km[subj]; ok {
				dead = append(dead, seq)
				delete(km, subj)
			}
			continue
		}
		subjects = append(subjects, subj)
	}
	var prefixes []jkey
	prefixes = append(prefixes, j.Prefixes...)
	if j.DeleteGroup {
		prefixes = append(prefixes, jkey{Class: storage.KeyMaterial})
	}
	for _, p := range prefixes {
		if p.Class != storage.KeyMaterial {
			continue
		}
		scope := sc
		if p.Client {
			scope = storage.ClientScope()
		}
		f := s.l.prefixFilter(scope, storage.KeyMaterial, p.Name)
		if km != nil && !p.Client {
			pre := strings.TrimSuffix(f, ">")
			for subj, seq := range km {
				if strings.HasPrefix(subj, pre) {
					dead = append(dead, seq)
					delete(km, subj)
				}
			}
			continue
		}
		filters = append(filters, f)
	}
	if len(subjects) > 0 {
		ms, err := s.getLast(ctx, s.l.keys, subjects)
		if err != nil {
			return err
		}
		for _, m := range ms {
			dead = append(dead, m.Sequence)
		}
	}
	for _, f := range filters {
		ms, err := s.scan(ctx, s.l.keys, f)
		if err != nil {
			return err
		}
		for _, m := range ms {
			dead = append(dead, m.Sequence)
		}
	}
	for _, seq := range dead {
		if seq >= hseq {
			continue
		}
		if err := s.erase(ctx, seq); err != nil {
			return err
		}
	}
	return nil
}

// erase erases one key-material message.
func (s *Store) erase(ctx context.Context, seq uint64) error {
	if err := s.step("erase"); err != nil {
		return err
	}
	return s.secureDelete(ctx, seq)
}

// ---- creation in several batches ----

// createLarge writes a unit that creates its group but does not fit one
// batch: the head is marked as creating (so no other creator starts and
// readers still find no group), the group's key material and public records
// are written in batches, and the head's final revision commits it. The
// unit's client-wide changes ride in the commit batch and its journal.
func (s *Store) createLarge(ctx context.Context, u *storage.Unit, c cached, p *planned) (uint64, error) {
	sc := u.Scope
	intent := &head{Version: 0, Creating: &creating{ID: u.ID, Since: time.Now(), Prior: c.h}}
	if c.h != nil {
		intent.Version = c.h.Version
		intent.Units = c.h.Units
	}
	ib, err := encodeHead(intent)
	if err != nil {
		return 0, err
	}
	im := nats.NewMsg(s.l.headSubject(sc))
	im.Data = ib
	im.Header.Set(jetstream.ExpectedLastSubjSeqHeader, seqHeader(c.seq))
	iseq, err := s.publish(ctx, []*nats.Msg{im})
	if err != nil {
		return 0, s.commitErr(ctx, sc, c, err)
	}
	s.setCache(sc, cached{h: intent, seq: iseq, done: true})
	if err := s.step("intent"); err != nil {
		return 0, err
	}
	// Key material of the group, then its public records and marker.
	var groupKM, clientKM []*nats.Msg
	clientPre := s.l.keysPre + s.l.scopeKey(storage.ClientScope()) + "."
	for _, m := range p.km {
		if len(m.Subject) >= len(clientPre) && m.Subject[:len(clientPre)] == clientPre {
			clientKM = append(clientKM, m)
		} else {
			groupKM = append(groupKM, m)
		}
	}
	for len(groupKM) > 0 {
		n := min(len(groupKM), maxBatch)
		if _, err := s.publish(ctx, groupKM[:n]); err != nil {
			return 0, s.createErr(ctx, sc, err)
		}
		groupKM = groupKM[n:]
		if err := s.step("create-keys"); err != nil {
			return 0, err
		}
	}
	j := p.j
	var groupPub, clientPub []jrecord
	for _, r := range j.Puts {
		if r.Client {
			clientPub = append(clientPub, r)
		} else {
			groupPub = append(groupPub, r)
		}
	}
	if len(groupPub) > 0 {
		gj := &journal{Version: j.Version, Puts: groupPub}
		if err := s.writePublic(ctx, sc, gj, marker{}, 0); err != nil {
			return 0, s.createErr(ctx, sc, err)
		}
	}
	// The commit: the head, with a journal of the client-wide changes.
	nh := p.nh
	nh.PubVersion = 0
	if len(groupPub) > 0 {
		nh.PubVersion = j.Version
	}
	cj := &journal{Version: j.Version, PrevPub: nh.PubVersion, Puts: clientPub, Deletes: j.Deletes, Prefixes: j.Prefixes}
	nh.Journal, nh.Chunks = nil, 0
	if len(cj.Puts)+len(cj.Deletes)+len(cj.Prefixes) > 0 {
		nh.Journal = cj
	}
	hb, err := encodeHead(nh)
	if err != nil {
		return 0, err
	}
	if len(hb) > journalChunk || len(clientKM)+1 > maxBatch {
		return 0, fmt.Errorf("%w: a creation's client-wide changes must fit one batch", storage.ErrInvalidUnit)
	}
	hm := nats.NewMsg(s.l.headSubject(sc))
	hm.Data = hb
	hm.Header.Set(jetstream.ExpectedLastSubjSeqHeader, seqHeader(iseq))
	if err := s.step("commit"); err != nil {
		return 0, err
	}
	hseq, err := s.publish(ctx, append(clientKM, hm))
	if err != nil {
		if isCASFailure(err) {
			return 0, s.commitErr(ctx, sc, cached{h: intent, seq: iseq}, err)
		}
		return 0, s.createErr(ctx, sc, err)
	}
	nc := cached{h: nh, seq: hseq, done: nh.Journal == nil}
	s.setCache(sc, nc)
	if err := s.step("committed"); err != nil {
		return p.version, err
	}
	if nh.Journal != nil {
		if err := s.finishJournal(ctx, sc, cj, hseq, nil); err != nil {
			s.log.Warn("jetstore: group created, its client-wide changes are left to the sweeper", "scope", sc.String(), "err", err)
			return p.version, nil
		}
		nc.done = true
		s.setCache(sc, nc)
	}
	return p.version, nil
}

// createErr reports a failure in the middle of a large creation: nothing
// is visible, and the leftovers are cleared by the next creator or the
// sweeper after Options.Grace.
func (s *Store) createErr(ctx context.Context, sc storage.Scope, err error) error {
	s.dropCache(sc)
	if isCASFailure(err) {
		return fmt.Errorf("%w: %v: a key material record of the creation exists", storage.ErrWriteOnce, sc)
	}
	if ctx.Err() != nil || isUnknown(err) {
		return fmt.Errorf("%w: %v: creation interrupted: %v", storage.ErrUnknownOutcome, sc, err)
	}
	return fmt.Errorf("jetstore: creation of %v: %w", sc, err)
}

// abandonCreation clears what an abandoned creation wrote and puts back
// the head it replaced.
func (s *Store) abandonCreation(ctx context.Context, sc storage.Scope, h *head, hseq uint64) error {
	ms, err := s.scan(ctx, s.l.keys, s.l.prefixFilter(sc, storage.KeyMaterial, ""))
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.Sequence > hseq {
			if err := s.erase(ctx, m.Sequence); err != nil {
				return err
			}
		}
	}
	s.stats.add(&s.stats.Requests, 1)
	if err := s.snap.Purge(ctx, jetstream.WithPurgeSubject(s.l.scopeFilter(sc, storage.Public))); err != nil {
		return s.readErr(ctx, err)
	}
	back := &head{Version: h.Version, Deleted: true, Units: h.Units}
	if p := h.Creating.Prior; p != nil {
		back = p
		back.Journal, back.Chunks = nil, 0
	}
	bb, err := encodeHead(back)
	if err != nil {
		return err
	}
	m := nats.NewMsg(s.l.headSubject(sc))
	m.Data = bb
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, seqHeader(hseq))
	if _, err := s.publish(ctx, []*nats.Msg{m}); err != nil && !isCASFailure(err) {
		return s.readErr(ctx, err)
	}
	s.dropCache(sc)
	return nil
}

// ---- the sweeper ----

func (s *Store) sweeper(ctx context.Context) {
	defer s.swept.Done()
	t := time.NewTicker(s.o.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.sweepOnce(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("jetstore: sweep failed", "err", err)
			}
		}
	}
}

// sweepOnce is one round of the sweeper: pick up wrapping keys other
// processes started, finish what dead writers left, rotate the wrapping key
// when it is due, and retire old generations once every Store has
// switched.
func (s *Store) sweepOnce(ctx context.Context) error {
	if err := s.loadWrappingKeys(ctx); err != nil {
		return err
	}
	if _, err := s.Sweep(ctx); err != nil {
		return err
	}
	if s.o.RotateEvery > 0 {
		cur, _ := s.ring.generations()
		if time.Since(s.ring.since(cur)) > s.o.RotateEvery {
			if err := s.RotateWrappingKey(ctx); err != nil {
				return err
			}
		}
	}
	_, err := s.RetireWrappingKeys(ctx, 2*s.o.SweepInterval+s.o.Grace)
	return err
}

// Sweep finishes the journals of heads older than Options.Grace and clears
// abandoned creations, for every scope of the member; it returns how many
// scopes it repaired. The sweeper calls it every Options.SweepInterval, so
// work a crashed writer left is done within SweepInterval + Grace.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	ms, err := s.scan(ctx, s.l.keys, s.l.keysPre+s.l.member+".*.h")
	if err != nil {
		return 0, err
	}
	gs, err := s.scan(ctx, s.l.keys, s.l.keysPre+s.l.member+".g.*.h")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range append(ms, gs...) {
		if time.Since(m.Time) < s.o.Grace {
			continue
		}
		pr, ok := s.l.parse(m.Subject)
		if !ok || pr.kind != 'h' {
			continue
		}
		h, err := decodeHead(m.Data)
		if err != nil {
			s.log.Warn("jetstore: undecodable head", "subject", m.Subject)
			continue
		}
		if !h.unfinished() {
			continue
		}
		if err := s.repair(ctx, pr.scope, m.Sequence); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// repair finishes a scope's head at hseq, if it is still the head, and
// trims its journal.
func (s *Store) repair(ctx context.Context, sc storage.Scope, hseq uint64) error {
	unlock, err := s.lock(ctx, sc)
	if err != nil {
		return err
	}
	defer unlock()
	h, seq, err := s.readHead(ctx, sc)
	if err != nil || seq != hseq || h == nil {
		return err
	}
	if h.Creating != nil {
		return s.abandonCreation(ctx, sc, h, seq)
	}
	if h.Intent != nil {
		if time.Since(h.Intent.Since) < s.o.Grace {
			return nil
		}
		return s.abandonIntent(ctx, sc, h, seq)
	}
	if h.Abandoned != nil {
		return s.eraseAbandoned(ctx, sc, h, seq)
	}
	if err := s.finish(ctx, sc, h, seq, nil); err != nil {
		return err
	}
	// Trim, so the next sweep passes this scope by.
	h.Journal, h.Chunks = nil, 0
	hb, err := encodeHead(h)
	if err != nil {
		return err
	}
	m := nats.NewMsg(s.l.headSubject(sc))
	m.Data = hb
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, seqHeader(seq))
	nseq, err := s.publish(ctx, []*nats.Msg{m})
	if err != nil {
		if isCASFailure(err) {
			return nil // someone wrote the scope meanwhile, having finished it
		}
		return s.readErr(ctx, err)
	}
	s.setCache(sc, cached{h: h, seq: nseq, done: true})
	return nil
}
