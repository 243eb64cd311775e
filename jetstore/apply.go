package jetstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/mlsengine/mlsengine/storage"
)

// Writing a unit. The commit point is one atomic batch in the key bucket's
// stream: the unit's new key material (each conditional on its name being
// unused, which is write-once), its journal when too large for the head,
// and the scope's new head (conditional on the head's last sequence, which
// is the version fence). The server applies the batch whole or not at all,
// so a crash leaves the old state or the new one. After the commit point the
// journal in the head is carried out: the unit's public changes go to the
// snapshot bucket in one batch with the scope's marker, and the key material
// the unit deleted is erased by sequence. Anyone who finds a journal
// unfinished (the next writer of the scope, Load, the sweeper) finishes it;
// every step of it is idempotent and bounded by sequences, so a late or
// repeated finisher never touches what later units wrote.
//
// A unit that creates a group too large for one batch (storage allows a
// creation of 65,536 records; a batch holds 1,000 messages) marks the head
// as creating, writes its records in batches and commits by replacing the
// mark; an abandoned creation is cleared after Options.Grace.

// maxBatch is the most messages jetstore puts in one atomic batch, below
// the server's default limit of 1,000.
const maxBatch = 990

// journalInline is the largest journal kept inside the head; larger ones
// go to chunk records of at most journalChunk bytes each.
const (
	journalInline = 256 << 10
	journalChunk  = 512 << 10
)

// createDirect is the journal size above which a unit creating its group
// takes the creation path (createLarge) even if it would fit one batch.
const createDirect = 32 << 10

// errRetry: the head moved under the unit; check it again.
var errRetry = errors.New("jetstore: head moved")

// Apply implements storage.Backend.
func (s *Store) Apply(ctx context.Context, u *storage.Unit) (uint64, error) {
	if err := u.Validate(); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	unlock, err := s.lock(ctx, u.Scope)
	if err != nil {
		return 0, err
	}
	defer unlock()
	fresh := false
	for attempt := 0; attempt < 16; attempt++ {
		c, ok := s.getCache(u.Scope)
		if !ok || fresh {
			h, seq, err := s.readHead(ctx, u.Scope)
			if err != nil {
				return 0, err
			}
			c = cached{h: h, seq: seq}
			s.setCache(u.Scope, c)
		}
		h := c.h
		if v, ok := h.remembered(u.ID); ok {
			return v, nil
		}
		if u.Scope.IsGroup() && u.Version != h.live() {
			if !fresh {
				fresh = true
				continue
			}
			return 0, fmt.Errorf("%w: %v is at version %d, the unit expects %d", storage.ErrConflict, u.Scope, h.live(), u.Version)
		}
		if h != nil && h.Creating != nil {
			if time.Since(h.Creating.Since) < s.o.Grace {
				return 0, fmt.Errorf("%w: %v is being created by another writer", storage.ErrConflict, u.Scope)
			}
			if err := s.abandonCreation(ctx, u.Scope, h, c.seq); err != nil {
				return 0, err
			}
			fresh = true
			continue
		}
		if h != nil && h.Intent != nil {
			// A unit under way: a retry of this very unit (its reply was
			// lost), or another writer's. Roll back one that is ours or
			// abandoned; leave a live one alone.
			if (u.ID.IsZero() || h.Intent.ID != u.ID) && time.Since(h.Intent.Since) < s.o.Grace {
				return 0, fmt.Errorf("%w: %v has a unit under way by another writer", storage.ErrConflict, u.Scope)
			}
			if err := s.abandonIntent(ctx, u.Scope, h, c.seq); err != nil {
				return 0, err
			}
			fresh = true
			continue
		}
		if h != nil && h.Abandoned != nil {
			// A rolled-back unit's records may be left: erase them before
			// anything can reuse their names.
			if err := s.eraseAbandoned(ctx, u.Scope, h, c.seq); err != nil {
				return 0, err
			}
			fresh = true
			continue
		}
		if h != nil && (h.Journal != nil || h.Chunks > 0) && !c.done {
			// The last unit's work is unfinished, or finished by a writer
			// that did not say so: finish it before anything can reuse
			// the names it erases.
			if err := s.finish(ctx, u.Scope, h, c.seq, c.km); err != nil {
				return 0, err
			}
			c.done = true
			s.setCache(u.Scope, c)
		}
		v, err := s.commit(ctx, u, c)
		if errors.Is(err, errRetry) {
			fresh = true
			continue
		}
		return v, err
	}
	return 0, fmt.Errorf("%w: %v: the head kept moving", storage.ErrConflict, u.Scope)
}

// planned is a unit turned into messages.
type planned struct {
	j       *journal
	km      []*nats.Msg // sealed key material, write-once
	nh      *head
	version uint64 // what Apply returns
}

func (s *Store) plan(u *storage.Unit, h *head, hseq uint64) (*planned, error) {
	var prev uint64
	var pub uint64
	if h != nil {
		prev, pub = h.Version, h.PubVersion
		if h.Deleted {
			pub = 0 // the snapshot was purged with the group
		}
	}
	// Versions are drawn above the head's sequence and every sequence this
	// Store has seen, as well as above the previous version: so they grow,
	// are never reused for a group id, and two groups rarely share one
	// (which makes a unit sent to the wrong group a conflict).
	newV := max(prev, hseq, s.maxSeq.Load()) + 1
	j := &journal{Version: newV, PrevPub: pub, DeleteGroup: u.DeleteGroup}
	p := &planned{j: j, version: newV}
	for _, r := range u.Puts {
		if r.Key.Class == storage.Public {
			j.Puts = append(j.Puts, jrecord{Client: r.Key.Scope.IsClient(), Name: r.Key.Name, Value: r.Value})
			continue
		}
		subj := s.l.recordSubject(r.Key)
		sealed, err := s.ring.seal(subj[len(s.l.keysPre):], r.Value)
		if err != nil {
			return nil, err
		}
		m := nats.NewMsg(subj)
		m.Data = sealed
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
		p.km = append(p.km, m)
	}
	for _, k := range u.Deletes {
		j.Deletes = append(j.Deletes, jkey{Client: k.Scope.IsClient(), Class: k.Class, Name: k.Name})
	}
	for _, k := range u.DeletePrefixes {
		j.Prefixes = append(j.Prefixes, jkey{Client: k.Scope.IsClient(), Class: k.Class, Name: k.Prefix})
	}
	nh := &head{Version: newV, Deleted: u.DeleteGroup, PubVersion: pub}
	if j.hasPublic() {
		nh.PubVersion = newV
	}
	if u.DeleteGroup {
		nh.PubVersion = 0
	}
	if h != nil {
		nh.Units = append([]remembered(nil), h.Units...)
	}
	if u.DeleteGroup || u.Scope.IsClient() {
		p.version = 0
	}
	nh.remember(u.ID, p.version)
	if len(j.Puts)+len(j.Deletes)+len(j.Prefixes) > 0 || j.DeleteGroup {
		nh.Journal = j
	}
	p.nh = nh
	return p, nil
}

// commit writes u's commit batch and then finishes its journal.
func (s *Store) commit(ctx context.Context, u *storage.Unit, c cached) (uint64, error) {
	p, err := s.plan(u, c.h, c.seq)
	if err != nil {
		return 0, err
	}
	var chunks []*nats.Msg
	bigCreate := false
	if p.nh.Journal != nil {
		jb, err := encodeJournal(p.nh.Journal)
		if err != nil {
			return 0, err
		}
		bigCreate = u.Creates() && len(jb) > createDirect
		if len(jb) > journalInline && !bigCreate {
			for i := 0; len(jb) > 0; i++ {
				n := min(len(jb), journalChunk)
				m := nats.NewMsg(s.l.journalSubject(u.Scope, i))
				m.Data = jb[:n]
				chunks = append(chunks, m)
				jb = jb[n:]
			}
			p.nh.Journal, p.nh.Chunks = nil, len(chunks)
		}
	}
	// A creation with many public records writes them straight to the
	// snapshot bucket instead of the journal: once rather than twice.
	if len(p.km)+len(chunks)+1 > maxBatch || bigCreate {
		if !u.Creates() {
			return 0, fmt.Errorf("%w: %d messages do not fit one atomic batch", storage.ErrInvalidUnit, len(p.km)+len(chunks)+1)
		}
		return s.createLarge(ctx, u, c, p)
	}
	if s.o.Commit == CommitIntent && len(p.km)+len(chunks) > 0 {
		return s.commitIntent(ctx, u, c, p, chunks)
	}
	hb, err := encodeHead(p.nh)
	if err != nil {
		return 0, err
	}
	hm := nats.NewMsg(s.l.headSubject(u.Scope))
	hm.Data = hb
	hm.Header.Set(jetstream.ExpectedLastSubjSeqHeader, seqHeader(c.seq))
	msgs := append(append(p.km, chunks...), hm)
	if err := s.step("commit"); err != nil {
		return 0, err
	}
	hseq, err := s.publish(ctx, msgs)
	if err != nil {
		return 0, s.commitErr(ctx, u.Scope, c, err)
	}
	// A batch's messages have consecutive sequences ending at the last.
	seqs := make([]uint64, len(p.km))
	for i := range p.km {
		seqs[i] = hseq - uint64(len(msgs)-1-i)
	}
	return s.committed(ctx, u.Scope, p, hseq, withPuts(c.km, p.km, seqs))
}

// withPuts returns km (nil stays nil: unknown) with the records of msgs at
// seqs added.
func withPuts(km map[string]uint64, msgs []*nats.Msg, seqs []uint64) map[string]uint64 {
	if km == nil {
		return nil
	}
	out := make(map[string]uint64, len(km)+len(msgs))
	for k, v := range km {
		out[k] = v
	}
	for i, m := range msgs {
		out[m.Subject] = seqs[i]
	}
	return out
}

// committed finishes a unit after its commit point (the head at hseq); km
// is the group's key material after the unit's puts, if known.
func (s *Store) committed(ctx context.Context, sc storage.Scope, p *planned, hseq uint64, km map[string]uint64) (uint64, error) {
	if sc.IsClient() {
		km = nil
	}
	nc := cached{h: p.nh, seq: hseq, km: km}
	if p.nh.Journal == nil && p.nh.Chunks == 0 {
		nc.done = true
	}
	s.setCache(sc, nc)
	if err := s.step("committed"); err != nil {
		return p.version, err
	}
	if !nc.done {
		if err := s.finishJournal(ctx, sc, p.j, hseq, km); err != nil {
			// The unit is committed; what is left is the next writer's,
			// Load's or the sweeper's to finish.
			s.log.Warn("jetstore: unit committed, its erasure or snapshot update is left to the sweeper", "scope", sc.String(), "err", err)
			return p.version, nil
		}
		nc.done = true
		s.setCache(sc, nc)
	}
	return p.version, nil
}

// commitErr turns a failed commit batch into the storage contract's error.
func (s *Store) commitErr(ctx context.Context, sc storage.Scope, c cached, err error) error {
	if isCASFailure(err) {
		// Either the head moved (another writer; check again) or a key
		// material name is taken (write-once). Only a fresh head tells.
		_, seq, rerr := s.readHead(ctx, sc)
		if rerr != nil {
			s.dropCache(sc)
			return rerr
		}
		if seq != c.seq {
			return errRetry
		}
		return fmt.Errorf("%w: %v: a key material record of the unit exists", storage.ErrWriteOnce, sc)
	}
	if ctx.Err() != nil || isUnknown(err) {
		s.dropCache(sc)
		return fmt.Errorf("%w: %v: %v", storage.ErrUnknownOutcome, sc, err)
	}
	return fmt.Errorf("jetstore: commit of %v: %w", sc, err)
}

// publish writes msgs as one atomic batch (one message needs no batch) and
// returns the sequence of the last. The batch's messages are stored with
// consecutive sequences.
func (s *Store) publish(ctx context.Context, msgs []*nats.Msg) (uint64, error) {
	n := 0
	for _, m := range msgs {
		n += len(m.Subject) + len(m.Data)
	}
	s.stats.add(&s.stats.Requests, 1)
	s.stats.add(&s.stats.Messages, uint64(len(msgs)))
	s.stats.add(&s.stats.Bytes, uint64(n))
	if len(msgs) == 1 {
		ack, err := s.js.PublishMsg(ctx, msgs[0])
		if err != nil {
			return 0, err
		}
		return ack.Sequence, nil
	}
	// No ack of the first message: a batch of a few messages is one round
	// trip; the server checks every condition at commit anyway.
	fc := jetstreamext.BatchFlowControl{AckFirst: false, AckTimeout: s.o.Timeout}
	if len(msgs) > 200 {
		fc.AckEvery = 200
	}
	ack, err := jetstreamext.PublishMsgBatch(ctx, s.js, msgs, fc)
	if err != nil {
		return 0, err
	}
	s.sawSeq(ack.Sequence)
	return ack.Sequence, nil
}

// sawSeq records the highest key-stream sequence seen, for drawing versions.
func (s *Store) sawSeq(seq uint64) {
	for {
		cur := s.maxSeq.Load()
		if seq <= cur || s.maxSeq.CompareAndSwap(cur, seq) {
			return
		}
	}
}
