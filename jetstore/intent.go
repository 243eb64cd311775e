package jetstore

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlsengine/mlsengine/storage"
)

// The intent commit mode. A unit that writes key material:
//
//  1. marks the head with an intent naming the subjects it will write
//     (compare-and-set on the head: this is where concurrent writers of
//     the scope are fenced);
//  2. writes its key material, each record conditional on its subject being
//     empty (write-once), and its journal chunks;
//  3. commits by writing the head's next revision (compare-and-set on the
//     intent's revision), which carries the new version and the journal.
//
// Readers ignore what an intent's unit wrote until it commits. A crash
// before step 3 leaves an intent; the next writer of the scope (after
// Options.Grace, or at once if it is the same unit retried), Load or the
// sweeper rolls it back: it erases what the unit wrote after the intent and
// restores the head. Each step is one round trip of a single message,
// where an atomic batch on a single-replica file store costs the server a
// staging file store and several fsyncs.

func (s *Store) commitIntent(ctx context.Context, u *storage.Unit, c cached, p *planned, chunks []*nats.Msg) (uint64, error) {
	sc := u.Scope
	tok, err := storage.NewUnitID(nil)
	if err != nil {
		return 0, err
	}
	in := &intent{ID: u.ID, Token: tok, Since: time.Now()}
	for _, m := range p.km {
		in.Subjects = append(in.Subjects, m.Subject)
		m.Header.Set(unitHeader, tok.String())
	}
	for _, m := range chunks {
		in.Subjects = append(in.Subjects, m.Subject)
	}
	marked := &head{}
	if c.h != nil {
		cp := *c.h
		marked = &cp
	}
	// The previous unit's journal was finished before this unit began.
	marked.Intent, marked.Journal, marked.Chunks = in, nil, 0
	mb, err := encodeHead(marked)
	if err != nil {
		return 0, err
	}
	mm := nats.NewMsg(s.l.headSubject(sc))
	mm.Data = mb
	mm.Header.Set(jetstream.ExpectedLastSubjSeqHeader, seqHeader(c.seq))
	if err := s.step("intent"); err != nil {
		return 0, err
	}
	iseq, err := s.publish(ctx, []*nats.Msg{mm})
	if err != nil {
		return 0, s.commitErr(ctx, sc, c, err)
	}
	s.setCache(sc, cached{h: marked, seq: iseq, done: true, km: c.km})
	if err := s.step("intent-keys"); err != nil {
		return 0, err
	}
	seqs, err := s.publishAll(ctx, append(p.km, chunks...))
	if err != nil {
		// Roll back now if we can; otherwise the intent stays for a retry
		// of this unit, another writer after Grace, or the sweeper.
		if isCASFailure(err) {
			if rerr := s.abandonIntent(ctx, sc, marked, iseq); rerr != nil {
				return 0, rerr
			}
			return 0, fmt.Errorf("%w: %v: a key material record of the unit exists", storage.ErrWriteOnce, sc)
		}
		s.dropCache(sc)
		if ctx.Err() != nil || isUnknown(err) {
			return 0, fmt.Errorf("%w: %v: %v", storage.ErrUnknownOutcome, sc, err)
		}
		return 0, fmt.Errorf("jetstore: unit of %v: %w", sc, err)
	}
	hb, err := encodeHead(p.nh)
	if err != nil {
		return 0, err
	}
	hm := nats.NewMsg(s.l.headSubject(sc))
	hm.Data = hb
	hm.Header.Set(jetstream.ExpectedLastSubjSeqHeader, seqHeader(iseq))
	if err := s.step("commit"); err != nil {
		return 0, err
	}
	hseq, err := s.publish(ctx, []*nats.Msg{hm})
	if err != nil {
		if isCASFailure(err) {
			// Someone rolled the intent back (it outlived Grace): nothing
			// of the unit remains.
			s.dropCache(sc)
			return 0, fmt.Errorf("%w: %v: the unit's intent was rolled back by another writer", storage.ErrConflict, sc)
		}
		return 0, s.commitErr(ctx, sc, cached{h: marked, seq: iseq}, err)
	}
	return s.committed(ctx, sc, p, hseq, withPuts(c.km, p.km, seqs))
}

// publishAll publishes msgs without waiting between them and waits for
// every acknowledgement: one round trip. It returns each message's
// sequence, or the first error, a write-once violation in preference.
func (s *Store) publishAll(ctx context.Context, msgs []*nats.Msg) ([]uint64, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	n := 0
	for _, m := range msgs {
		n += len(m.Subject) + len(m.Data)
	}
	s.stats.add(&s.stats.Requests, 1)
	s.stats.add(&s.stats.Messages, uint64(len(msgs)))
	s.stats.add(&s.stats.Bytes, uint64(n))
	futs := make([]jetstream.PubAckFuture, 0, len(msgs))
	var first error
	for _, m := range msgs {
		f, err := s.js.PublishMsgAsync(m)
		if err != nil {
			first = err
			break
		}
		futs = append(futs, f)
	}
	seqs := make([]uint64, len(msgs))
	for i, f := range futs {
		select {
		case ack := <-f.Ok():
			s.sawSeq(ack.Sequence)
			seqs[i] = ack.Sequence
		case err := <-f.Err():
			if first == nil || isCASFailure(err) && !isCASFailure(first) {
				first = err
			}
		case <-ctx.Done():
			if first == nil {
				first = ctx.Err()
			}
		}
	}
	if first != nil {
		return nil, first
	}
	return seqs, nil
}

// abandonIntent rolls back the unfinished unit of the head h at hseq: it
// erases what the unit wrote after its intent and restores the head as it
// was before the intent.
//
// The head is rolled back first, by a compare-and-set at hseq that leaves
// the intent as Abandoned: if its writer committed meanwhile, the
// compare-and-set fails and nothing is undone (erasing first would destroy
// a committed unit's key material). Then the unit's records are erased and
// the mark cleared.
func (s *Store) abandonIntent(ctx context.Context, sc storage.Scope, h *head, hseq uint64) error {
	back := *h
	// The journal the head carried was finished before the intent was
	// written (a writer finishes it first), so it goes too.
	back.Intent, back.Journal, back.Chunks = nil, nil, 0
	back.Abandoned = h.Intent
	nseq, err := s.putHead(ctx, sc, &back, hseq)
	s.dropCache(sc)
	if isCASFailure(err) {
		return nil // committed, or rolled back by another: not ours to undo
	}
	if err != nil {
		return s.readErr(ctx, err)
	}
	if err := s.step("abandoned"); err != nil {
		return err
	}
	return s.eraseAbandoned(ctx, sc, &back, nseq)
}

// eraseAbandoned erases what the head's abandoned intent wrote and clears
// the mark (the head being at hseq).
func (s *Store) eraseAbandoned(ctx context.Context, sc storage.Scope, h *head, hseq uint64) error {
	in := h.Abandoned
	var km []string
	for _, subj := range in.Subjects {
		if p, ok := s.l.parse(subj); ok && p.kind == 'r' {
			km = append(km, subj)
		}
	}
	for len(km) > 0 {
		n := min(len(km), 1000)
		ms, err := s.getLast(ctx, s.l.keys, km[:n])
		if err != nil {
			return err
		}
		for _, m := range ms {
			if in.wrote(m) {
				if err := s.erase(ctx, m.Sequence); err != nil {
					return err
				}
			}
		}
		km = km[n:]
	}
	// Chunks of a journal are public; the previous journal was finished
	// before the intent, so every chunk is the unit's.
	s.stats.add(&s.stats.Requests, 1)
	if err := s.keys.Purge(ctx, jetstream.WithPurgeSubject(s.l.keysPre+s.l.scopeKey(sc)+".j.>")); err != nil {
		return s.readErr(ctx, err)
	}
	clean := *h
	clean.Abandoned = nil
	_, err := s.putHead(ctx, sc, &clean, hseq)
	s.dropCache(sc)
	if err != nil && !isCASFailure(err) {
		return s.readErr(ctx, err)
	}
	return nil
}

// putHead writes a head revision conditional on the head being at hseq.
func (s *Store) putHead(ctx context.Context, sc storage.Scope, h *head, hseq uint64) (uint64, error) {
	hb, err := encodeHead(h)
	if err != nil {
		return 0, err
	}
	m := nats.NewMsg(s.l.headSubject(sc))
	m.Data = hb
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, seqHeader(hseq))
	return s.publish(ctx, []*nats.Msg{m})
}
