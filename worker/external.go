package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/events"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// External joins (RFC 9420 §12.4.3.2). A hosted member joins from a
// GroupInfo, the command's or the last one on the group's groupinfo
// subject, which the members hosted here publish after each commit they
// make. The external commit is published like every commit, as the first
// message on its epoch's subject: if another commit for the epoch is
// there first, the join lost, and the joiner's state, of an epoch that
// never was, is deleted.
//
// The joiner's state is stored by engine.JoinExternal in a unit of its
// own, before the cursor can be set on it; the cursor (with the commit to
// publish) follows in a second unit, and nothing is published before it
// is stored. A state found without a cursor in the epoch the GroupInfo
// leads to is what a crash between the two units left: its commit was
// never published, so it is deleted and the join made again.

// externalJoin applies an external-join command. The command must be on
// the group's command subject, so that it is applied in order with the
// group's other inputs.
func (w *Worker) externalJoin(ctx context.Context, c *events.Command, seq uint64) error {
	m, err := w.hosted(ctx, c.Member)
	if err != nil {
		res, err := hostedResult(err)
		if err != nil {
			return err
		}
		return w.result(ctx, c, seq, res)
	}
	b := c.GroupInfo
	if len(b) == 0 {
		b, err = w.lastOn(ctx, w.s.GroupInfo(c.Group))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return w.result(ctx, c, seq, &events.Result{Code: events.CodeBadArgument, Error: "no GroupInfo was published for the group"})
		}
		if err != nil {
			return err
		}
	}
	msg, res := groupInfoArgument(c.Group, b)
	if res != nil {
		return w.result(ctx, c, seq, res)
	}
	epoch := msg.GroupInfo.GroupContext.Epoch
	subject := w.s.Epoch(c.Group, epoch)

	h, err := w.group(ctx, c.Member, c.Group)
	switch {
	case errors.Is(err, engine.ErrGroupNotFound):
	case err != nil && failure(err):
		return err
	case err != nil:
		return w.result(ctx, c, seq, &events.Result{Code: events.CodeInternal, Error: err.Error()})
	case readCursor(h).Seq == seq:
		// This input, redelivered: its commit is stored in the cursor.
		return w.finishJoin(ctx, c, seq, h, readCursor(h))
	case h.Cursor() == nil && h.Epoch() == epoch+1:
		// Left by a crash before the cursor was stored: never published.
		w.forget(c.Member, c.Group)
		if err := h.Delete(ctx); err != nil {
			return err
		}
	default:
		// The same command again (published twice), after its join: the
		// epoch's commit is the member's external commit.
		same, err := w.joinedBy(ctx, subject, m.signer.PublicKey())
		if err != nil {
			return err
		}
		if same {
			return w.result(ctx, c, seq, &events.Result{Epoch: epoch + 1})
		}
		if h.Active() {
			return w.result(ctx, c, seq, &events.Result{Code: events.CodeExists, Error: "already a member of the group"})
		}
		// Removed, or the group was reinitialized: JoinExternal replaces
		// the old state.
		w.forget(c.Member, c.Group)
	}

	nh, commit, err := engine.JoinExternal(ctx, m.store, m.signer, w.cfgFor(m.info), credential(m.info), msg, nil)
	switch {
	case errors.Is(err, engine.ErrGroupExists):
		return w.result(ctx, c, seq, &events.Result{Code: events.CodeExists, Error: "already a member of the group"})
	case err != nil && failure(err):
		return err
	case err != nil:
		// JoinExternal stores nothing when it refuses the GroupInfo.
		return w.result(ctx, c, seq, &events.Result{Code: codeOf(err), Error: err.Error()})
	}
	cur := cursor{Seq: seq, Pending: true, Result: &events.Result{Epoch: nh.Epoch()},
		Out: []output{{Subject: subject, Data: commit.Bytes(), From: c.Member, FirstOnSubject: true}}}
	if err := setCursor(nh, &cur); err != nil {
		return err
	}
	if err := nh.StoreCursor(ctx); err != nil {
		return err
	}
	return w.finishJoin(ctx, c, seq, nh, cur)
}

// groupInfoArgument decodes an external join's GroupInfo, or answers why
// it cannot be used.
func groupInfoArgument(groupID, b []byte) (*wire.MLSMessage, *events.Result) {
	msg, err := wire.Unmarshal[wire.MLSMessage](b)
	switch {
	case err != nil:
		return nil, &events.Result{Code: events.CodeBadArgument, Error: fmt.Sprintf("GroupInfo: %v", err)}
	case msg.GroupInfo == nil:
		return nil, &events.Result{Code: events.CodeBadArgument, Error: "GroupInfo: the message is not a GroupInfo"}
	case !bytes.Equal(msg.GroupInfo.GroupContext.GroupID, groupID):
		return nil, &events.Result{Code: events.CodeWrongGroup, Error: "the GroupInfo is of another group than the command's"}
	case wire.FindExtension(msg.GroupInfo.Extensions, wire.ExtensionTypeRatchetTree) == nil:
		// The worker has no other source of the tree (§12.4.3.3).
		return nil, &events.Result{Code: events.CodeBadArgument,
			Error: "the GroupInfo carries no ratchet tree (ratchet_tree extension, RFC 9420 §12.4.3.3)"}
	}
	return msg, nil
}

// finishJoin publishes a stored external join's commit, if the cursor
// says it is not decided yet, and then everything else the join
// publishes: its GroupInfo, the joined event and the result.
func (w *Worker) finishJoin(ctx context.Context, c *events.Command, seq uint64, h *engine.Group, cur cursor) error {
	if cur.Pending {
		won, err := w.firstOnSubject(ctx, cur.Out[0])
		if err != nil {
			return err
		}
		if !won {
			// Another commit ended the epoch: the state is of an epoch
			// the group never reached.
			w.forget(c.Member, c.Group)
			if err := h.Delete(ctx); err != nil {
				return err
			}
			return w.result(ctx, c, seq, &events.Result{Code: events.CodeLost,
				Error: "another commit for the epoch won; join again from a newer GroupInfo"})
		}
		cur.Pending = false
		if err := w.addGroupInfo(h, c, &cur); err != nil {
			return err
		}
		if err := setCursor(h, &cur); err != nil {
			return err
		}
		if err := h.StoreCursor(ctx); err != nil {
			w.forget(c.Member, c.Group)
			return err
		}
	}
	for _, o := range cur.Out {
		if err := w.publish(ctx, o); err != nil && !isWrongLastSeq(err) {
			return err
		}
	}
	if err := w.reg.Join(ctx, c.Group, c.Member); err != nil {
		return err
	}
	if err := w.event(ctx, &events.Event{Kind: events.EvJoined, Member: c.Member, Group: c.Group, Seq: seq, Epoch: cur.Result.Epoch},
		"join-"+c.Member+"-"+strconv.FormatUint(seq, 10)); err != nil {
		return err
	}
	return w.result(ctx, c, seq, cur.Result)
}

// firstOnSubject publishes a commit as the first message on its epoch's
// subject and reports whether it is there: the server stores one commit
// per epoch, and the one it stored may be this one, published before (a
// redelivery).
func (w *Worker) firstOnSubject(ctx context.Context, commit output) (bool, error) {
	err := w.publish(ctx, commit)
	if err == nil {
		return true, nil
	}
	if !isWrongLastSeq(err) {
		return false, err
	}
	last, err := w.lastOn(ctx, commit.Subject)
	if err != nil {
		return false, err
	}
	return bytes.Equal(last, commit.Data), nil
}

// joinedBy reports whether the commit on an epoch's subject is an
// external commit (sender new_member_commit) whose new leaf has the
// signature key pub.
func (w *Worker) joinedBy(ctx context.Context, subject string, pub []byte) (bool, error) {
	last, err := w.lastOn(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	m, err := wire.Unmarshal[wire.MLSMessage](last)
	if err != nil || m.PublicMessage == nil {
		return false, nil
	}
	fc := &m.PublicMessage.Content
	return fc.Sender.SenderType == wire.SenderTypeNewMemberCommit && fc.Commit != nil && fc.Commit.Path != nil &&
		bytes.Equal(fc.Commit.Path.LeafNode.SignatureKey, pub), nil
}

// addGroupInfo adds to a commit's outputs the GroupInfo of the epoch the
// commit made (§12.4.3), on the group's groupinfo subject, for external
// joiners: with the ratchet tree if the worker's members put it in
// their Welcomes (Config.Engine.RatchetTreeExtension). It is stored in
// the cursor with the other outputs, so that a redelivery publishes the
// same bytes. Nothing is added if the cursor has it already, if the
// member is not in that epoch or not active (a ReInit ended the group),
// or if it would not fit in a message or the cursor; only a failure of
// the worker or its storage is an error.
func (w *Worker) addGroupInfo(h *engine.Group, c *events.Command, cur *cursor) error {
	subject := w.s.GroupInfo(c.Group)
	if slices.ContainsFunc(cur.Out, func(o output) bool { return o.Subject == subject }) ||
		cur.Result == nil || h.Epoch() != cur.Result.Epoch || !h.Active() {
		return nil
	}
	gi, err := h.GroupInfo(&group.GroupInfoOptions{RatchetTree: w.cfg.Engine.RatchetTreeExtension})
	if err != nil {
		if failure(err) {
			return err
		}
		w.log.Warn("worker: no GroupInfo for the new epoch", "member", c.Member, "epoch", h.Epoch(), "err", err)
		return nil
	}
	with := *cur
	with.Out = append(slices.Clone(cur.Out), output{Subject: subject, Data: gi.Bytes(), ID: "gi-" + c.Member + "-" + c.ID})
	if b, err := msgpack.Marshal(&with); err != nil || len(b) > engine.MaxCursorLen || len(gi.Bytes()) > events.MaxPayload {
		w.log.Warn("worker: the GroupInfo of the new epoch is too large to publish", "member", c.Member, "epoch", h.Epoch(),
			"bytes", len(gi.Bytes()))
		return nil
	}
	*cur = with
	return nil
}

// commitGroupInfo adds the GroupInfo to the outputs of a commit the
// member made and merged, and stores the cursor with it.
func (w *Worker) commitGroupInfo(ctx context.Context, h *engine.Group, c *events.Command, cur *cursor) error {
	n := len(cur.Out)
	if err := w.addGroupInfo(h, c, cur); err != nil || len(cur.Out) == n {
		return err
	}
	if err := setCursor(h, cur); err != nil {
		return err
	}
	if err := h.StoreCursor(ctx); err != nil {
		w.forget(c.Member, c.Group)
		return err
	}
	return nil
}
