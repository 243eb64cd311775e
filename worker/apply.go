package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/events"
	"github.com/mlsengine/mlsengine/jetstore"
	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// output is a message an input makes a member publish.
type output struct {
	Subject string `msgpack:"s"`
	Data    []byte `msgpack:"d"`
	ID      string `msgpack:"i,omitempty"` // Nats-Msg-Id
	From    string `msgpack:"f,omitempty"` // the publishing member
	// FirstOnSubject: a commit, which must be the first message on its
	// epoch's subject.
	FirstOnSubject bool `msgpack:"c,omitempty"`
	// Same, in a stored cursor, is 1 + the index of an earlier output
	// whose Data this one publishes too (one Welcome to many members is
	// kept once).
	Same int `msgpack:"r,omitempty"`
}

// cursor is what the worker stores with a member's group (engine's cursor):
// the last input applied and what it publishes. Its outputs are MLS
// messages, public by nature; no plaintext or secret goes in it.
type cursor struct {
	Seq uint64 `msgpack:"q"`
	// Pending: the input's commit is stored as pending and published (or
	// to be published) but not merged yet.
	Pending bool     `msgpack:"p,omitempty"`
	Out     []output `msgpack:"o,omitempty"`
	// Result is the command's result, repeated when it is redelivered.
	Result *events.Result `msgpack:"r,omitempty"`
}

func readCursor(h *engine.Group) cursor {
	var c cursor
	if b := h.Cursor(); b != nil {
		if msgpack.Unmarshal(b, &c) != nil {
			return cursor{} // an unreadable cursor reads as none
		}
	}
	for i, o := range c.Out {
		if o.Same > 0 && o.Same <= i {
			c.Out[i].Data, c.Out[i].Same = c.Out[o.Same-1].Data, 0
		}
	}
	return c
}

func setCursor(h *engine.Group, c *cursor) error {
	b, err := encodeCursor(c)
	if err != nil {
		return err
	}
	return h.SetCursor(b)
}

// encodeCursor encodes c with each output's data kept once.
func encodeCursor(c *cursor) ([]byte, error) {
	stored := *c
	stored.Out = slices.Clone(c.Out)
	for i := range stored.Out {
		for j := range i {
			if stored.Out[j].Same == 0 && bytes.Equal(stored.Out[j].Data, stored.Out[i].Data) {
				stored.Out[i].Data, stored.Out[i].Same = nil, j+1
				break
			}
		}
	}
	return msgpack.Marshal(&stored)
}

// errTooLarge: what a command produced is more than the worker can keep
// in a cursor or publish.
var errTooLarge = errors.New("worker: too large")

// fits checks that c can be stored and its outputs published.
func fits(c *cursor) error {
	for _, o := range c.Out {
		if len(o.Data) > events.MaxPayload {
			return fmt.Errorf("%w: an output of %d bytes, over the %d a message may have", errTooLarge, len(o.Data), events.MaxPayload)
		}
	}
	b, err := encodeCursor(c)
	if err != nil {
		return err
	}
	if len(b) > engine.MaxCursorLen {
		return fmt.Errorf("%w: outputs of %d bytes, over the %d the worker keeps to publish them again after a crash", errTooLarge, len(b), engine.MaxCursorLen)
	}
	return nil
}

// errPublish: an output or event could not be published.
var errPublish = errors.New("worker: publishing")

func published(err error) error {
	if err != nil {
		return fmt.Errorf("%w: %w", errPublish, err)
	}
	return nil
}

// failure is an error of the worker, NATS or storage: the input is
// redelivered rather than rejected. Every other error is the input's.
func failure(err error) bool {
	return errors.Is(err, errPublish) || errors.Is(err, engine.ErrStorage) || errors.Is(err, engine.ErrConflict) || errors.Is(err, engine.ErrUnknownOutcome) ||
		errors.Is(err, engine.ErrHandleBroken) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// codeOf classifies why an input was refused.
func codeOf(err error) events.Code {
	switch {
	case errors.Is(err, group.ErrMalformed), errors.Is(err, events.ErrMalformed), errors.Is(err, codec.ErrMalformed):
		return events.CodeMalformed
	case errors.Is(err, group.ErrWrongGroup):
		return events.CodeWrongGroup
	case errors.Is(err, group.ErrWrongEpoch):
		return events.CodeWrongEpoch
	case errors.Is(err, group.ErrBadSignature), errors.Is(err, group.ErrBadMembershipTag), errors.Is(err, group.ErrDecryption):
		return events.CodeBadSignature
	case errors.Is(err, group.ErrReplay):
		return events.CodeReplay
	case errors.Is(err, group.ErrSenderNotMember):
		return events.CodeNotMember
	case errors.Is(err, engine.ErrGroupNotFound):
		return events.CodeNotMember
	}
	return events.CodeInvalid
}

// apply applies one input of the log at sequence seq. A nil error means
// the input is done with (applied, recognized as applied, or rejected);
// an error means it must be tried again.
func (w *Worker) apply(ctx context.Context, b *batch, subject string, seq uint64, hdr nats.Header, data []byte) error {
	in, err := w.s.ParseInput(subject)
	if err != nil {
		w.log.Warn("worker: input on a subject outside the contract dropped", "subject", subject, "seq", seq)
		return nil
	}
	if len(data) > events.MaxPayload {
		return w.deadLetter(ctx, in.GroupID, seq, data, events.CodeTooLarge)
	}
	switch in.Kind {
	case events.InputCommand:
		return w.command(ctx, in, seq, data)
	case events.InputMsg, events.InputCommit:
		return w.groupMessage(ctx, b, in.GroupID, seq, hdr.Get(fromHeader), data)
	case events.InputWelcome:
		if in.Member == "" {
			return nil // for members hosted elsewhere
		}
		return w.welcome(ctx, in, seq, data)
	}
	return nil // GroupInfos are read by external joins, not applied
}

// deadLetter copies an input that can never apply to the group's
// dead-letter subject.
func (w *Worker) deadLetter(ctx context.Context, groupID []byte, seq uint64, data []byte, code events.Code) error {
	if len(data) > events.MaxPayload {
		data = nil
	}
	m := nats.NewMsg(w.s.DeadLetter(groupID))
	m.Data = data
	m.Header.Set(jetstream.MsgIDHeader, "dlq-"+strconv.FormatUint(seq, 10))
	m.Header.Set("Mls-Code", string(code))
	m.Header.Set("Mls-Seq", strconv.FormatUint(seq, 10))
	_, err := w.js.PublishMsg(ctx, m)
	return err
}

// groupMessage delivers an MLS message to every hosted member of the
// group but its sender.
func (w *Worker) groupMessage(ctx context.Context, b *batch, groupID []byte, seq uint64, from string, data []byte) error {
	members, err := w.reg.GroupMembers(ctx, groupID)
	if err != nil {
		return err
	}
	for _, m := range members {
		if m == from {
			continue
		}
		if err := w.deliver(ctx, b, m, groupID, seq, data); err != nil {
			return err
		}
	}
	return nil
}

func (w *Worker) deliver(ctx context.Context, b *batch, member string, groupID []byte, seq uint64, data []byte) error {
	h, err := w.group(ctx, member, groupID)
	if errors.Is(err, engine.ErrGroupNotFound) {
		return w.reg.Leave(ctx, groupID, member) // the registry was behind
	}
	if err != nil {
		return err
	}
	if c := readCursor(h); c.Seq >= seq {
		return nil // applied before this delivery
	}
	if err := setCursor(h, &cursor{Seq: seq}); err != nil {
		return err
	}
	return w.process(ctx, b, h, member, groupID, seq, data, false)
}

// process applies a group message to a member's group. A message parked
// before (of an epoch that had not come yet) is applied without the
// cursor, which has moved past it. With a batch b, an application
// message's changes wait in the handle for the batch's flush
// (engine.Group.ProcessDeferred), which comes before its input is
// acknowledged.
func (w *Worker) process(ctx context.Context, b *batch, h *engine.Group, member string, groupID []byte, seq uint64, data []byte, parked bool) error {
	id := member + "-" + strconv.FormatUint(seq, 10)
	// The handle is locked while the callback below runs: read it first.
	own, epoch := h.OwnLeafIndex(), h.Epoch()
	removed := false
	// Events go out before the input's unit is stored (ProcessThen), under
	// ids made of the member and the log sequence: if the worker dies in
	// between, the redelivered input is processed again and its events
	// are dropped as duplicates, so a plaintext is never lost with the key
	// that decrypted it.
	processThen := h.ProcessThen
	if b != nil && !parked {
		processThen = h.ProcessDeferred
	}
	rm, err := processThen(ctx, data, func(rm *engine.ReceivedMessage) error {
		switch {
		case rm.Commit != nil:
			sc := rm.Commit
			e := &events.Event{Kind: events.EvEpoch, Member: member, Group: groupID, Seq: seq, Epoch: sc.Epoch(),
				Sender: senderRef(sc.Sender())}
			if sc.IsExternal() {
				// The joiner's leaf, which its external commit added
				// (RFC 9420 §12.4.3.2).
				e.Sender = &events.MemberRef{Leaf: uint32(sc.NewMemberLeaf())}
				e.Added = append(e.Added, *e.Sender)
			}
			for _, a := range sc.Added() {
				e.Added = append(e.Added, events.MemberRef{Leaf: uint32(a.Index)})
			}
			for _, l := range sc.Updated() {
				e.Updated = append(e.Updated, events.MemberRef{Leaf: uint32(l)})
			}
			for _, l := range sc.Removed() {
				e.Removed = append(e.Removed, events.MemberRef{Leaf: uint32(l)})
				if l == own {
					removed = true
				}
			}
			if removed {
				e.Kind, e.Detail = events.EvGroupDeleted, "removed from the group"
			}
			return published(w.event(ctx, e, "ep-"+id))
		case rm.Proposal != nil:
			return published(w.event(ctx, &events.Event{Kind: events.EvProposal, Member: member, Group: groupID, Seq: seq, Epoch: epoch,
				Sender: senderRef(rm.Sender)}, "prop-"+id))
		default:
			// The plaintext goes to the events stream only, never into the
			// group's stored state.
			return published(w.event(ctx, &events.Event{Kind: events.EvApplication, Member: member, Group: groupID, Seq: seq, Epoch: rm.Epoch,
				Sender: senderRef(rm.Sender), Data: rm.ApplicationData, AAD: rm.AuthenticatedData}, "app-"+id))
		}
	})
	if err != nil {
		if failure(err) {
			w.forget(member, groupID)
			return err
		}
		if e := messageEpoch(data); errors.Is(err, group.ErrWrongEpoch) && e > h.Epoch() && !parked {
			// Its commit is still on its way, behind it in the log: set it
			// aside until the member reaches its epoch.
			return w.park(ctx, groupID, member, seq, data)
		}
		if parked && errors.Is(err, group.ErrReplay) {
			return nil // applied before a crash, and parked still
		}
		// Nothing is stored for a rejected input, not even the cursor: a
		// redelivery is rejected again, and its event is the same message
		// id.
		if err := w.event(ctx, &events.Event{Kind: events.EvRejected, Member: member, Group: groupID, Seq: seq,
			Epoch: h.Epoch(), Code: codeOf(err), Detail: err.Error()}, "rej-"+id); err != nil {
			return err
		}
		return w.deadLetter(ctx, groupID, seq, data, codeOf(err))
	}
	if rm.Commit != nil {
		if err := h.MergeStagedCommit(ctx, rm.Commit); err != nil {
			w.forget(member, groupID)
			return err
		}
		if removed || !h.Active() {
			w.forget(member, groupID)
			return w.reg.Leave(ctx, groupID, member)
		}
		return w.unpark(ctx, h, member, groupID)
	}
	if b != nil && !parked && rm.Proposal == nil {
		w.hold(b, member, groupID, h)
	}
	return nil
}

// messageEpoch is the epoch a PublicMessage or PrivateMessage says it is
// of (0 if it is neither).
func messageEpoch(b []byte) uint64 {
	m, err := wire.Unmarshal[wire.MLSMessage](b)
	switch {
	case err != nil:
		return 0
	case m.PrivateMessage != nil:
		return m.PrivateMessage.Epoch
	case m.PublicMessage != nil:
		return m.PublicMessage.Content.Epoch
	}
	return 0
}

func senderRef(s wire.Sender) *events.MemberRef {
	return &events.MemberRef{Leaf: uint32(s.LeafIndex)}
}

// welcome joins a hosted member to a group from a Welcome.
func (w *Worker) welcome(ctx context.Context, in events.Input, seq uint64, data []byte) error {
	id := in.Member + "-" + strconv.FormatUint(seq, 10)
	if _, err := w.reg.Member(ctx, in.Member); errors.Is(err, ErrUnknownMember) {
		return w.event(ctx, &events.Event{Kind: events.EvRejected, Member: in.Member, Group: in.GroupID, Seq: seq,
			Code: events.CodeUnknownMember, Detail: "no such hosted member"}, "rej-"+id)
	} else if err != nil {
		return err
	}
	s, err := w.store(ctx, in.Member)
	if err != nil {
		return err
	}
	msg, err := wire.Unmarshal[wire.MLSMessage](data)
	if err == nil && msg.Welcome == nil {
		err = fmt.Errorf("%w: not a Welcome", group.ErrMalformed)
	}
	var h *engine.Group
	if err == nil {
		cfg := w.cfg.Engine
		h, err = engine.JoinGroup(ctx, s, msg, &cfg, nil)
	}
	switch {
	case errors.Is(err, engine.ErrGroupExists):
		return nil // joined with this Welcome before (a redelivery)
	case err != nil && failure(err):
		return err
	case err != nil:
		return w.event(ctx, &events.Event{Kind: events.EvRejected, Member: in.Member, Group: in.GroupID, Seq: seq,
			Code: codeOf(err), Detail: err.Error()}, "rej-"+id)
	}
	if err := setCursor(h, &cursor{Seq: seq}); err != nil {
		return err
	}
	if err := h.StoreCursor(ctx); err != nil {
		return err
	}
	if err := w.reg.Join(ctx, h.GroupID(), in.Member); err != nil {
		return err
	}
	return w.event(ctx, &events.Event{Kind: events.EvJoined, Member: in.Member, Group: h.GroupID(), Seq: seq, Epoch: h.Epoch()}, "join-"+id)
}

// command applies a command for a hosted member and publishes its result.
func (w *Worker) command(ctx context.Context, in events.Input, seq uint64, data []byte) error {
	c, err := events.DecodeCommand(data)
	if err != nil {
		return w.event(ctx, &events.Event{Kind: events.EvRejected, Member: in.Member, Group: in.GroupID, Seq: seq,
			Code: events.CodeMalformed, Detail: err.Error()}, "rej-cmd-"+strconv.FormatUint(seq, 10))
	}
	if c.Member != in.Member || (c.Group != nil && in.GroupID != nil && !bytes.Equal(c.Group, in.GroupID)) {
		return w.result(ctx, c, seq, &events.Result{Code: events.CodeBadArgument, Error: "the command's member or group is not its subject's"})
	}
	var res *events.Result
	switch c.Kind {
	case events.CmdCreateMember:
		res, err = w.createMember(ctx, c)
	case events.CmdKeyPackages:
		res, err = w.keyPackages(ctx, c)
	case events.CmdCreateGroup:
		res, err = w.createGroup(ctx, c, seq)
	case events.CmdAdd, events.CmdRemove, events.CmdSelfUpdate, events.CmdCommit:
		return w.commitCommand(ctx, c, seq)
	case events.CmdSend, events.CmdPropose, events.CmdLeave:
		return w.send(ctx, c, seq)
	case events.CmdExport:
		return w.export(ctx, c, seq)
	case events.CmdDeleteGroup:
		return w.deleteGroup(ctx, c, seq)
	case events.CmdExternalJoin:
		if in.GroupID == nil {
			res = &events.Result{Code: events.CodeBadArgument, Error: "external-join must be published on its group's command subject"}
			break
		}
		c.Group = in.GroupID
		return w.externalJoin(ctx, c, seq)
	default:
		res = &events.Result{Code: events.CodeBadArgument, Error: "unknown command"}
	}
	if err != nil {
		return err
	}
	return w.result(ctx, c, seq, res)
}

// result publishes a command's result, once per request id.
func (w *Worker) result(ctx context.Context, c *events.Command, seq uint64, r *events.Result) error {
	r.ID, r.Kind, r.OK = c.ID, c.Kind, r.Code == ""
	return w.event(ctx, &events.Event{Kind: events.EvResult, Member: c.Member, Group: c.Group, Seq: seq, Epoch: r.Epoch, Result: r},
		"res-"+c.Member+"-"+c.ID)
}

// hosted is a hosted member's store, signature key and registry record.
type hosted struct {
	store  *jetstore.Store
	signer *ciphersuite.SigningKey
	info   *MemberInfo
}

func (w *Worker) hosted(ctx context.Context, member string) (*hosted, error) {
	info, err := w.reg.Member(ctx, member)
	if errors.Is(err, ErrUnknownMember) {
		return nil, err
	}
	if err != nil {
		return nil, published(err)
	}
	s, err := w.store(ctx, member)
	if err != nil {
		return nil, published(err)
	}
	k, err := engine.LoadSignatureKey(ctx, s, info.SignerPub)
	if err != nil {
		return nil, err
	}
	return &hosted{store: s, signer: k, info: info}, nil
}

// hostedResult answers a command for a member that is not hosted; other
// errors are failures, retried.
func hostedResult(err error) (*events.Result, error) {
	if errors.Is(err, ErrUnknownMember) {
		return &events.Result{Code: events.CodeUnknownMember, Error: "no such hosted member"}, nil
	}
	return nil, err
}

func (w *Worker) createMember(ctx context.Context, c *events.Command) (*events.Result, error) {
	suiteID := ciphersuite.ID(c.Suite)
	if suiteID == 0 {
		suiteID = engine.DefaultSuite
	}
	suite, err := ciphersuite.Lookup(suiteID)
	if err != nil {
		return &events.Result{Code: events.CodeBadArgument, Error: err.Error()}, nil
	}
	if info, err := w.reg.Member(ctx, c.Member); err == nil {
		if info.Request == c.ID {
			return &events.Result{}, nil // this very command, redelivered
		}
		return &events.Result{Code: events.CodeExists, Error: "the member exists"}, nil
	} else if !errors.Is(err, ErrUnknownMember) {
		return nil, err
	}
	k, err := suite.GenerateSigningKey(nil)
	if err != nil {
		return nil, err
	}
	s, err := w.store(ctx, c.Member)
	if err != nil {
		return nil, err
	}
	if err := engine.StoreSignatureKey(ctx, s, suiteID, k); err != nil {
		return nil, err
	}
	identity := c.Identity
	if identity == nil {
		identity = []byte(c.Member)
	}
	if err := w.reg.AddMember(ctx, c.Member, MemberInfo{Suite: uint16(suiteID), Identity: identity, SignerPub: k.PublicKey(), Request: c.ID}); err != nil {
		if errors.Is(err, errExists) {
			// A redelivery raced the first attempt's registration.
			return &events.Result{Code: events.CodeExists, Error: "the member exists"}, nil
		}
		return nil, err
	}
	return &events.Result{}, nil
}

func (w *Worker) cfgFor(info *MemberInfo) *engine.Config {
	cfg := w.cfg.Engine
	cfg.Suite = ciphersuite.ID(info.Suite)
	return &cfg
}

func credential(info *MemberInfo) wire.Credential {
	return wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: info.Identity}
}

func (w *Worker) keyPackages(ctx context.Context, c *events.Command) (*events.Result, error) {
	m, err := w.hosted(ctx, c.Member)
	if err != nil {
		return hostedResult(err)
	}
	// A redelivery answers as the first time did. (A crash between making
	// the key packages and recording them makes a second set, never
	// handed out.)
	if prev, err := w.reg.LastResult(ctx, c.Member, c.ID); err != nil {
		return nil, err
	} else if prev != nil {
		return prev, nil
	}
	s, k, info := m.store, m.signer, m.info
	n := max(c.Count, 1)
	res := &events.Result{}
	for range n {
		kp, err := engine.NewKeyPackage(ctx, s, k, w.cfgFor(info), credential(info), &engine.KeyPackageOptions{LastResort: c.LastResort})
		if err != nil {
			return nil, err
		}
		ref, err := engine.KeyPackageRef(kp)
		if err != nil {
			return nil, err
		}
		if err := w.reg.KeyPackage(ctx, fmt.Sprintf("%x", ref), c.Member); err != nil {
			return nil, err
		}
		b, err := wire.Marshal(kp)
		if err != nil {
			return nil, err
		}
		res.KeyPackages = append(res.KeyPackages, b)
	}
	if err := w.reg.SetLastResult(ctx, c.Member, c.ID, res); err != nil {
		return nil, err
	}
	return res, nil
}

func (w *Worker) createGroup(ctx context.Context, c *events.Command, seq uint64) (*events.Result, error) {
	m, err := w.hosted(ctx, c.Member)
	if err != nil {
		return hostedResult(err)
	}
	s, k, info := m.store, m.signer, m.info
	cfg := w.cfgFor(info)
	cfg.GroupID = c.Group
	h, err := engine.NewGroup(ctx, s, k, cfg, credential(info))
	switch {
	case errors.Is(err, engine.ErrGroupExists):
		// This command redelivered (its cursor says so), or another one
		// made the group.
		if h, err := w.group(ctx, c.Member, c.Group); err == nil && readCursor(h).Seq == seq {
			return &events.Result{Epoch: h.Epoch()}, w.reg.Join(ctx, c.Group, c.Member)
		}
		return &events.Result{Code: events.CodeExists, Error: "the group exists"}, nil
	case err != nil:
		return nil, err
	}
	if err := setCursor(h, &cursor{Seq: seq}); err != nil {
		return nil, err
	}
	if err := h.StoreCursor(ctx); err != nil {
		return nil, err
	}
	if err := w.reg.Join(ctx, c.Group, c.Member); err != nil {
		return nil, err
	}
	return &events.Result{Epoch: h.Epoch()}, nil
}

// produce makes the message a send, propose or leave command publishes.
func (w *Worker) produce(ctx context.Context, h *engine.Group, c *events.Command) (*wire.MLSMessage, error) {
	switch c.Kind {
	case events.CmdLeave:
		return h.Leave(ctx)
	case events.CmdPropose:
		msg, err := w.propose(ctx, h, c.Proposal)
		if err != nil && !failure(err) && !errors.Is(err, errBadArgument) && proposalRefused(err) {
			// The engine refused what the command asked for, not the
			// state of the group.
			err = fmt.Errorf("%w: %w", errBadArgument, err)
		}
		return msg, err
	}
	return h.Protect(ctx, c.Data, c.AAD)
}

// errBadArgument: a command whose arguments do not decode or that the
// protocol refuses whatever the state of the group; its result is
// bad-argument and nothing is stored.
var errBadArgument = errors.New("worker: bad argument")

func badArgument(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errBadArgument, fmt.Sprintf(format, a...))
}

// proposalRefused: the engine refused a proposal for its content.
func proposalRefused(err error) bool {
	return errors.Is(err, group.ErrInvalidArgument) || errors.Is(err, group.ErrInvalidProposal) ||
		errors.Is(err, group.ErrUnsupported) || errors.Is(err, group.ErrMalformed) || errors.Is(err, group.ErrUnknownPSK) ||
		errors.Is(err, codec.ErrMalformed)
}

// propose makes the proposal of a propose command (RFC 9420 §12.1), after
// checking what the engine leaves to its caller: that the PSK is one the
// member can resolve, and that every member supports a custom proposal
// type or the new GroupContext extensions; such a proposal could never be
// committed, and would fail every commit that carries it.
func (w *Worker) propose(ctx context.Context, h *engine.Group, p *events.Proposal) (*wire.MLSMessage, error) {
	var msg *wire.MLSMessage
	var err error
	switch p.Kind {
	case events.ProposeAdd:
		kp, kerr := wire.Unmarshal[wire.KeyPackage](p.KeyPackage)
		if kerr != nil {
			return nil, badArgument("key package: %v", kerr)
		}
		msg, _, err = h.ProposeAdd(ctx, kp)
	case events.ProposeRemove:
		msg, _, err = h.ProposeRemove(ctx, treemath.LeafIndex(p.Leaf))
	case events.ProposeUpdate:
		msg, _, err = h.ProposeUpdate(ctx, nil)
	case events.ProposeExternalPSK: // §12.1.4, §8.4
		if len(p.PSKID) == 0 {
			return nil, badArgument("psk-external needs a psk id")
		}
		if err := w.knownPSK(ctx, h, &wire.PreSharedKeyID{PSKType: wire.PSKTypeExternal, PSKID: p.PSKID}); err != nil {
			return nil, err
		}
		msg, _, err = h.ProposeExternalPSK(ctx, p.PSKID)
	case events.ProposeResumption: // §12.1.4, §8.6
		id := &wire.PreSharedKeyID{PSKType: wire.PSKTypeResumption, Usage: wire.ResumptionPSKUsageApplication,
			PSKGroupID: h.GroupID(), PSKEpoch: p.Epoch}
		if err := w.knownPSK(ctx, h, id); err != nil {
			return nil, err
		}
		msg, _, err = h.ProposeResumptionPSK(ctx, p.Epoch)
	case events.ProposeReInit: // §12.1.5, §11.2
		if len(p.NewGroup) == 0 || len(p.NewGroup) > events.MaxGroupIDLen {
			return nil, badArgument("reinit needs the new group's id (1 to %d bytes)", events.MaxGroupIDLen)
		}
		suite := h.Suite().ID()
		if p.Suite != 0 {
			s, serr := ciphersuite.Lookup(ciphersuite.ID(p.Suite))
			if serr != nil {
				return nil, badArgument("reinit: %v", serr)
			}
			suite = s.ID()
		}
		var exts []wire.Extension
		if p.Extensions != nil {
			if exts, err = decodeExtensions(p.Extensions); err != nil {
				return nil, err
			}
		}
		msg, _, err = h.ProposeReInit(ctx, p.NewGroup, suite, exts)
	case events.ProposeGCE: // §12.1.7
		if p.Extensions == nil {
			return nil, badArgument("gce needs the extension list (RFC 9420 encoding; an empty list is one zero byte)")
		}
		exts, derr := decodeExtensions(p.Extensions)
		if derr != nil {
			return nil, derr
		}
		if err := supportedByAll(h, exts, 0); err != nil {
			return nil, err
		}
		msg, _, err = h.ProposeGroupContextExtensions(ctx, exts)
	case events.ProposeCustom: // §13.2
		t := wire.ProposalType(p.Type)
		if defaultProposal(t) || t == 0 {
			return nil, badArgument("custom proposal type %d is not a custom type", p.Type)
		}
		if err := supportedByAll(h, nil, t); err != nil {
			return nil, err
		}
		msg, _, err = h.ProposeCustom(ctx, t, p.Body)
	default:
		return nil, badArgument("proposal %q not implemented by this worker", p.Kind)
	}
	return msg, err
}

// knownPSK refuses a PSK the member cannot resolve: a commit would leave
// its proposal out (§12.2 lets a committer include only what it can
// process).
func (w *Worker) knownPSK(ctx context.Context, h *engine.Group, id *wire.PreSharedKeyID) error {
	ok, err := h.HasPSK(ctx, id)
	switch {
	case err != nil:
		return err
	case !ok:
		return badArgument("unknown psk")
	}
	return nil
}

// decodeExtensions decodes an extension list in its RFC 9420 encoding
// (Extension extensions<V>, §7.2).
func decodeExtensions(b []byte) ([]wire.Extension, error) {
	l, err := wire.Unmarshal[wire.GroupContextExtensions](b)
	if err != nil {
		return nil, badArgument("extensions: %v", err)
	}
	if err := wire.CheckExtensions(l.Extensions); err != nil {
		return nil, badArgument("extensions: %v", err)
	}
	return l.Extensions, nil
}

// defaultProposal and defaultExtension are the types RFC 9420 defines
// (§17.4, §17.3), which every member supports.
func defaultProposal(t wire.ProposalType) bool {
	return t >= wire.ProposalTypeAdd && t <= wire.ProposalTypeGroupContextExtensions
}

func defaultExtension(t wire.ExtensionType) bool {
	return t >= wire.ExtensionTypeApplicationID && t <= wire.ExtensionTypeExternalSenders
}

// supportedByAll checks that every member's leaf supports the
// GroupContext extensions exts and the capabilities they require
// (§12.1.7, §11.1), and the custom proposal type custom if it is not 0
// (§12.2, §13.2).
func supportedByAll(h *engine.Group, exts []wire.Extension, custom wire.ProposalType) error {
	var rc *wire.RequiredCapabilities
	if e := wire.FindExtension(exts, wire.ExtensionTypeRequiredCapabilities); e != nil {
		var err error
		if rc, err = e.RequiredCapabilities(); err != nil {
			return badArgument("required_capabilities: %v", err)
		}
	}
	tree, err := wire.Unmarshal[wire.RatchetTree](h.RatchetTreeBytes())
	if err != nil {
		return err
	}
	for i, n := range *tree {
		if n == nil || n.LeafNode == nil {
			continue
		}
		c, leaf := &n.LeafNode.Capabilities, i/2
		for _, e := range exts {
			if !defaultExtension(e.ExtensionType) && !slices.Contains(c.Extensions, e.ExtensionType) {
				return badArgument("the member at leaf %d does not support extension %v", leaf, e.ExtensionType)
			}
		}
		if rc != nil {
			for _, t := range rc.ExtensionTypes {
				if !defaultExtension(t) && !slices.Contains(c.Extensions, t) {
					return badArgument("the member at leaf %d does not support the required extension %v", leaf, t)
				}
			}
			for _, t := range rc.ProposalTypes {
				if !defaultProposal(t) && !slices.Contains(c.Proposals, t) {
					return badArgument("the member at leaf %d does not support the required proposal %v", leaf, t)
				}
			}
			for _, t := range rc.CredentialTypes {
				if !slices.Contains(c.Credentials, t) {
					return badArgument("the member at leaf %d does not support the required credential %v", leaf, t)
				}
			}
		}
		if custom != 0 && !slices.Contains(c.Proposals, custom) {
			return badArgument("the member at leaf %d does not support proposal type %d", leaf, custom)
		}
	}
	return nil
}

// export answers with a secret exported from the group's current epoch
// (RFC 9420 §8.5). It changes nothing.
func (w *Worker) export(ctx context.Context, c *events.Command, seq uint64) error {
	h, err := w.group(ctx, c.Member, c.Group)
	if err != nil {
		if failure(err) {
			return err
		}
		return w.result(ctx, c, seq, &events.Result{Code: events.CodeNotMember, Error: "not a member of the group"})
	}
	sec, err := h.ExportSecret(c.Label, c.Context, c.Length)
	if err != nil {
		return w.result(ctx, c, seq, &events.Result{Code: events.CodeBadArgument, Error: err.Error()})
	}
	return w.result(ctx, c, seq, &events.Result{Epoch: h.Epoch(), Secret: sec.Bytes()})
}

// deleteGroup forgets a group: the member's state of it is erased.
func (w *Worker) deleteGroup(ctx context.Context, c *events.Command, seq uint64) error {
	s, err := w.store(ctx, c.Member)
	if err != nil {
		return err
	}
	w.forget(c.Member, c.Group)
	if err := engine.DeleteGroup(ctx, s, c.Group); err != nil && !errors.Is(err, engine.ErrGroupNotFound) {
		return err
	}
	if err := w.reg.Leave(ctx, c.Group, c.Member); err != nil {
		return err
	}
	if err := w.event(ctx, &events.Event{Kind: events.EvGroupDeleted, Member: c.Member, Group: c.Group, Seq: seq,
		Detail: "deleted by a command"}, "del-"+c.Member+"-"+strconv.FormatUint(seq, 10)); err != nil {
		return err
	}
	return w.result(ctx, c, seq, &events.Result{})
}

// sent is the cursor of a command that publishes one MLS message.
func (w *Worker) sent(c *events.Command, seq uint64, m *wire.MLSMessage) cursor {
	var epoch uint64
	switch {
	case m.PrivateMessage != nil:
		epoch = m.PrivateMessage.Epoch
	case m.PublicMessage != nil:
		epoch = m.PublicMessage.Content.Epoch
	}
	return cursor{Seq: seq, Result: &events.Result{Epoch: epoch},
		Out: []output{{Subject: w.s.Msg(c.Group), Data: m.Bytes(), ID: "msg-" + c.Member + "-" + c.ID, From: c.Member}}}
}

// send protects an application message, or makes a proposal, and
// publishes it.
func (w *Worker) send(ctx context.Context, c *events.Command, seq uint64) error {
	h, err := w.group(ctx, c.Member, c.Group)
	if err != nil {
		if failure(err) {
			return err
		}
		return w.result(ctx, c, seq, &events.Result{Code: events.CodeNotMember, Error: "not a member of the group"})
	}
	if cur := readCursor(h); cur.Seq >= seq {
		return w.republish(ctx, c, seq, cur)
	}
	// The consumed generation and the cursor with the ciphertext are
	// stored in one unit (a proposal's in two: a crash between them wastes
	// the proposal), and only then is it published, so that a redelivery
	// publishes the same message (once, by its message id).
	var cur cursor
	var msg *wire.MLSMessage
	if c.Kind == events.CmdSend {
		msg, err = h.ProtectThen(ctx, c.Data, c.AAD, func(m *wire.MLSMessage) ([]byte, error) {
			cur = w.sent(c, seq, m)
			return encodeCursor(&cur)
		})
	} else {
		msg, err = w.produce(ctx, h, c)
	}
	if err != nil {
		if failure(err) {
			w.forget(c.Member, c.Group)
			return err
		}
		if errors.Is(err, errBadArgument) {
			return w.result(ctx, c, seq, &events.Result{Code: events.CodeBadArgument, Error: err.Error()})
		}
		return w.result(ctx, c, seq, &events.Result{Code: codeOf(err), Error: err.Error()})
	}
	if c.Kind != events.CmdSend {
		cur = w.sent(c, seq, msg)
		if err := setCursor(h, &cur); err != nil {
			return err
		}
		if err := h.StoreCursor(ctx); err != nil {
			w.forget(c.Member, c.Group)
			return err
		}
	}
	return w.republish(ctx, c, seq, cur)
}

// republish publishes again what an input applied before published, and
// its result.
func (w *Worker) republish(ctx context.Context, c *events.Command, seq uint64, cur cursor) error {
	for _, o := range cur.Out {
		if err := w.publish(ctx, o); err != nil && !isWrongLastSeq(err) {
			return err
		}
	}
	r := cur.Result
	if r == nil {
		r = &events.Result{}
	}
	return w.result(ctx, c, seq, r)
}

func isWrongLastSeq(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && (ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// commitCommand makes a commit (add, remove, self-update), stores it as
// pending with the outputs in the cursor, publishes it on its epoch's
// subject as the first message there, and merges it if it won.
func (w *Worker) commitCommand(ctx context.Context, c *events.Command, seq uint64) error {
	h, err := w.group(ctx, c.Member, c.Group)
	if err != nil {
		if failure(err) {
			return err
		}
		return w.result(ctx, c, seq, &events.Result{Code: events.CodeNotMember, Error: "not a member of the group"})
	}
	cur := readCursor(h)
	if cur.Seq == seq && !cur.Pending && cur.Result != nil && cur.Result.Code == "" {
		// Redelivered after its merge: the GroupInfo may not have been
		// stored yet.
		if err := w.commitGroupInfo(ctx, h, c, &cur); err != nil {
			return err
		}
		if !h.Active() {
			if err := w.reg.Leave(ctx, c.Group, c.Member); err != nil {
				return err
			}
		}
	}
	if cur.Seq > seq || cur.Seq == seq && !cur.Pending {
		return w.republish(ctx, c, seq, cur)
	}
	if cur.Seq < seq {
		if h.HasPendingCommit() {
			// A pending commit of an earlier input that never got its
			// turn; it is not on its epoch's subject (that input would
			// have merged or cleared it), so it can go.
			if err := h.ClearPendingCommit(ctx); err != nil {
				return err
			}
		}
		epoch := h.Epoch()
		var res *engine.CommitResult
		switch c.Kind {
		case events.CmdAdd:
			var kps []*wire.KeyPackage
			for _, b := range c.KeyPackages {
				kp, err := wire.Unmarshal[wire.KeyPackage](b)
				if err != nil {
					return w.result(ctx, c, seq, &events.Result{Code: events.CodeMalformed, Error: "a key package does not decode"})
				}
				kps = append(kps, kp)
			}
			res, err = h.AddMembers(ctx, kps)
		case events.CmdRemove:
			var leaves []treemath.LeafIndex
			for _, l := range c.Leaves {
				leaves = append(leaves, treemath.LeafIndex(l))
			}
			res, err = h.RemoveMembers(ctx, leaves)
		case events.CmdCommit:
			res, err = h.Commit(ctx, nil)
		default:
			res, err = h.SelfUpdate(ctx, nil)
		}
		if err != nil {
			if failure(err) {
				w.forget(c.Member, c.Group)
				return err
			}
			return w.result(ctx, c, seq, &events.Result{Code: codeOf(err), Error: err.Error()})
		}
		cur = cursor{Seq: seq, Pending: true, Result: &events.Result{Epoch: epoch + 1}}
		cur.Out = append(cur.Out, output{Subject: w.s.Epoch(c.Group, epoch), Data: res.Commit.Bytes(), From: c.Member, FirstOnSubject: true})
		if res.Welcome != nil {
			for _, o := range w.welcomeOutputs(ctx, c, res) {
				cur.Out = append(cur.Out, o)
			}
		}
		if err := fits(&cur); err != nil {
			// Never to be published: the commit is dropped, and the
			// command refused rather than retried forever.
			refused := cursor{Seq: seq, Result: &events.Result{Code: events.CodeTooLarge,
				Error: err.Error() + "; add fewer members per commit, or leave the ratchet tree out of the Welcome"}}
			if err := setCursor(h, &refused); err != nil {
				return err
			}
			if err := h.ClearPendingCommit(ctx); err != nil {
				return err
			}
			return w.result(ctx, c, seq, refused.Result)
		}
		if err := setCursor(h, &cur); err != nil {
			return err
		}
		if err := h.StoreCursor(ctx); err != nil {
			return err
		}
	}
	// Publish the commit; the server lets the first one per epoch in: ours
	// (perhaps published before a redelivery), or a winner's.
	won, err := w.firstOnSubject(ctx, cur.Out[0])
	if err != nil {
		return err
	}
	done := cur
	done.Pending = false
	if !won {
		done.Out, done.Result = nil, &events.Result{Code: events.CodeLost, Error: "another commit for the epoch won"}
		if err := setCursor(h, &done); err != nil {
			return err
		}
		if err := h.ClearPendingCommit(ctx); err != nil {
			return err
		}
		return w.result(ctx, c, seq, done.Result)
	}
	if err := setCursor(h, &done); err != nil {
		return err
	}
	if err := h.MergePendingCommit(ctx); err != nil {
		return err
	}
	// The new epoch's GroupInfo, for external joiners (§12.4.3.2).
	if err := w.commitGroupInfo(ctx, h, c, &done); err != nil {
		return err
	}
	if !h.Active() {
		// A committed ReInit ended the group (§11.2): no more inputs
		// for the member.
		w.forget(c.Member, c.Group)
		if err := w.reg.Leave(ctx, c.Group, c.Member); err != nil {
			return err
		}
	}
	for _, o := range done.Out[1:] {
		if err := w.publish(ctx, o); err != nil {
			return err
		}
	}
	return w.result(ctx, c, seq, done.Result)
}

// welcomeOutputs routes a Welcome to each hosted member whose key package
// it answers, and to the group's Welcome subject for outside clients. The
// key packages are the commit's Adds: the command's, and those of Add
// proposals it commits.
func (w *Worker) welcomeOutputs(ctx context.Context, c *events.Command, res *engine.CommitResult) []output {
	b := res.Welcome.Bytes()
	outs := []output{{Subject: w.s.OutsideWelcome(c.Group), Data: b, ID: "wel-" + c.Member + "-" + c.ID}}
	for _, a := range res.Added {
		ref, err := engine.KeyPackageRef(a.KeyPackage)
		if err != nil {
			continue
		}
		if m, err := w.reg.KeyPackageOwner(ctx, fmt.Sprintf("%x", ref)); err == nil {
			outs = append(outs, output{Subject: w.s.Welcome(c.Group, m), Data: b, ID: "wel-" + c.Member + "-" + c.ID + "-" + m})
		}
	}
	return outs
}

// lastOn reads the last message on a subject of the log.
func (w *Worker) lastOn(ctx context.Context, subject string) ([]byte, error) {
	st, err := w.js.Stream(ctx, events.DefaultLogStream)
	if err != nil {
		return nil, err
	}
	// The stream stores the subject transformed into its partition.
	m, err := st.GetLastMsgForSubject(ctx, w.s.AnyPartition(subject))
	if err != nil {
		return nil, err
	}
	return m.Data, nil
}
