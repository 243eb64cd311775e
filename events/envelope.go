package events

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Version is the envelope version this package writes and reads.
const Version = 1

// ErrMalformed: an envelope that does not decode, or breaks the contract.
var ErrMalformed = errors.New("events: malformed envelope")

// CommandKind names a command.
type CommandKind string

// The commands a hosted member takes. Each gets exactly one result.
const (
	CmdCreateMember CommandKind = "create-member" // Suite, Identity
	CmdKeyPackages  CommandKind = "key-packages"  // Count, LastResort: published on the result
	CmdCreateGroup  CommandKind = "create-group"  // Group (the new id), Suite
	CmdAdd          CommandKind = "add"           // KeyPackages: commit adding them
	CmdRemove       CommandKind = "remove"        // Leaves: commit removing them
	CmdSelfUpdate   CommandKind = "self-update"   // commit with a new leaf key
	CmdPropose      CommandKind = "propose"       // Proposal
	CmdCommit       CommandKind = "commit"        // commit the pending proposals
	CmdSend         CommandKind = "send"          // Data, AAD: an application message
	CmdExport       CommandKind = "export"        // Label, Context, Length
	CmdExternalJoin CommandKind = "external-join" // Group, GroupInfo (or the last one on the group's groupinfo subject)
	CmdLeave        CommandKind = "leave"         // a Remove proposal for oneself
	CmdDeleteGroup  CommandKind = "delete-group"  // forget the group
)

var commandKinds = map[CommandKind]bool{
	CmdCreateMember: true, CmdKeyPackages: true, CmdCreateGroup: true, CmdAdd: true, CmdRemove: true,
	CmdSelfUpdate: true, CmdPropose: true, CmdCommit: true, CmdSend: true, CmdExport: true,
	CmdExternalJoin: true, CmdLeave: true, CmdDeleteGroup: true,
}

// needsGroup reports whether a command is about an existing or new group.
func (k CommandKind) needsGroup() bool {
	return k != CmdCreateMember && k != CmdKeyPackages
}

// ProposalKind names a proposal of CmdPropose.
type ProposalKind string

const (
	ProposeAdd         ProposalKind = "add"            // KeyPackage
	ProposeRemove      ProposalKind = "remove"         // Leaf
	ProposeUpdate      ProposalKind = "update"         //
	ProposeExternalPSK ProposalKind = "psk-external"   // PSKID
	ProposeResumption  ProposalKind = "psk-resumption" // Epoch
	ProposeReInit      ProposalKind = "reinit"         // NewGroup, Suite
	ProposeGCE         ProposalKind = "gce"            // Extensions (RFC 9420 encoding of the list)
	ProposeCustom      ProposalKind = "custom"         // Type, Body
)

var proposalKinds = map[ProposalKind]bool{
	ProposeAdd: true, ProposeRemove: true, ProposeUpdate: true, ProposeExternalPSK: true,
	ProposeResumption: true, ProposeReInit: true, ProposeGCE: true, ProposeCustom: true,
}

// Proposal is the argument of CmdPropose.
type Proposal struct {
	Kind       ProposalKind `msgpack:"k"`
	KeyPackage []byte       `msgpack:"kp,omitempty"`
	Leaf       uint32       `msgpack:"leaf,omitempty"`
	PSKID      []byte       `msgpack:"psk,omitempty"`
	Epoch      uint64       `msgpack:"epoch,omitempty"`
	NewGroup   []byte       `msgpack:"ng,omitempty"`
	Suite      uint16       `msgpack:"suite,omitempty"`
	Extensions []byte       `msgpack:"ext,omitempty"`
	Type       uint16       `msgpack:"type,omitempty"`
	Body       []byte       `msgpack:"body,omitempty"`
}

// Command is an instruction to a hosted member, published on
// Subjects.Command. MLS structures (key packages, GroupInfo) are in their
// RFC 9420 encoding.
type Command struct {
	V      int         `msgpack:"v"`
	ID     string      `msgpack:"id"` // request id: 1 to 64 bytes, repeated by the result
	Kind   CommandKind `msgpack:"k"`
	Member string      `msgpack:"m"`
	Group  []byte      `msgpack:"g,omitempty"`

	Suite       uint16    `msgpack:"suite,omitempty"`
	Identity    []byte    `msgpack:"identity,omitempty"`
	Count       int       `msgpack:"count,omitempty"`
	LastResort  bool      `msgpack:"lr,omitempty"`
	KeyPackages [][]byte  `msgpack:"kps,omitempty"`
	Leaves      []uint32  `msgpack:"leaves,omitempty"`
	Proposal    *Proposal `msgpack:"proposal,omitempty"`
	Data        []byte    `msgpack:"data,omitempty"`
	AAD         []byte    `msgpack:"aad,omitempty"`
	Label       string    `msgpack:"label,omitempty"`
	Context     []byte    `msgpack:"ctx,omitempty"`
	Length      int       `msgpack:"len,omitempty"`
	GroupInfo   []byte    `msgpack:"gi,omitempty"`
}

// Code is a machine-readable reason: why a command failed or a message was
// rejected.
type Code string

const (
	CodeMalformed     Code = "malformed"      // the input does not decode
	CodeTooLarge      Code = "too-large"      // over MaxPayload
	CodeUnknownMember Code = "unknown-member" // no such hosted member
	CodeNotMember     Code = "not-member"     // the member is not in the group (or was removed)
	CodeWrongGroup    Code = "wrong-group"    // the message is for another group than its subject
	CodeWrongEpoch    Code = "wrong-epoch"    // a past epoch, or a future one for too long
	CodeBadSignature  Code = "bad-signature"  // authentication failed
	CodeReplay        Code = "replay"         // the message was already processed
	CodeInvalid       Code = "invalid"        // a protocol rule of RFC 9420 refuses it
	CodeLost          Code = "lost"           // another commit for the epoch won
	CodeExists        Code = "exists"         // the member or group exists already
	CodeBadArgument   Code = "bad-argument"   // a command's arguments are wrong
	CodeInternal      Code = "internal"       // a failure of the worker or its storage
)

// EventKind names an event.
type EventKind string

const (
	EvJoined       EventKind = "joined"
	EvEpoch        EventKind = "epoch"
	EvApplication  EventKind = "app"
	EvProposal     EventKind = "proposal"
	EvRejected     EventKind = "rejected"
	EvResult       EventKind = "result"
	EvGroupDeleted EventKind = "deleted"
)

var eventKinds = map[EventKind]bool{
	EvJoined: true, EvEpoch: true, EvApplication: true, EvProposal: true, EvRejected: true,
	EvResult: true, EvGroupDeleted: true,
}

// MemberRef names a member of a group in an event.
type MemberRef struct {
	Leaf     uint32 `msgpack:"leaf"`
	Identity []byte `msgpack:"id,omitempty"`
}

// Event is what a worker publishes on Subjects.Event.
type Event struct {
	V      int       `msgpack:"v"`
	Kind   EventKind `msgpack:"k"`
	Member string    `msgpack:"m"`
	Group  []byte    `msgpack:"g,omitempty"`
	Epoch  uint64    `msgpack:"epoch,omitempty"`
	// Seq is the log stream sequence of the input that caused the event.
	Seq uint64 `msgpack:"seq,omitempty"`

	// Epoch changed.
	Added   []MemberRef `msgpack:"added,omitempty"`
	Removed []MemberRef `msgpack:"removed,omitempty"`
	Updated []MemberRef `msgpack:"updated,omitempty"`
	// Application message or proposal received.
	Sender *MemberRef `msgpack:"sender,omitempty"`
	Data   []byte     `msgpack:"data,omitempty"`
	AAD    []byte     `msgpack:"aad,omitempty"`
	// Proposal received.
	Proposal ProposalKind `msgpack:"proposal,omitempty"`
	// Rejected.
	Code   Code   `msgpack:"code,omitempty"`
	Detail string `msgpack:"detail,omitempty"` // never a secret
	// Result of a command.
	Result *Result `msgpack:"result,omitempty"`
}

// Result is the outcome of one command; a redelivered command gets the
// same result again, never a second effect.
type Result struct {
	ID    string      `msgpack:"id"`
	Kind  CommandKind `msgpack:"k"`
	OK    bool        `msgpack:"ok"`
	Code  Code        `msgpack:"code,omitempty"`
	Error string      `msgpack:"error,omitempty"`
	Epoch uint64      `msgpack:"epoch,omitempty"`
	// KeyPackages made (CmdKeyPackages), RFC 9420 encoding.
	KeyPackages [][]byte `msgpack:"kps,omitempty"`
	// Secret exported (CmdExport). It travels in the events stream, which
	// keeps it for the stream's MaxAge: export only what may be kept there.
	Secret []byte `msgpack:"secret,omitempty"`
}

// Marshal encodes v (a Command, an Event or a Result) with V set.
func Marshal(v any) ([]byte, error) {
	switch x := v.(type) {
	case *Command:
		x.V = Version
	case *Event:
		x.V = Version
	}
	return msgpack.Marshal(v)
}

// decode decodes b into v strictly: one value, no unknown field, no
// trailing bytes, at most MaxPayload bytes.
func decode(b []byte, v any) error {
	if len(b) > MaxPayload {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(b), MaxPayload)
	}
	r := bytes.NewReader(b)
	d := msgpack.NewDecoder(r)
	d.DisallowUnknownFields(true)
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if r.Len() != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, r.Len())
	}
	return nil
}

// DecodeCommand decodes and checks a command.
func DecodeCommand(b []byte) (*Command, error) {
	var c Command
	if err := decode(b, &c); err != nil {
		return nil, err
	}
	if err := c.Check(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Check checks a command's version, id, kind, member and arguments.
func (c *Command) Check() error {
	switch {
	case c.V != Version:
		return fmt.Errorf("%w: version %d (this build speaks %d)", ErrMalformed, c.V, Version)
	case c.ID == "" || len(c.ID) > 64:
		return fmt.Errorf("%w: request id must be 1 to 64 bytes", ErrMalformed)
	case !commandKinds[c.Kind]:
		return fmt.Errorf("%w: unknown command %q", ErrMalformed, c.Kind)
	case c.Kind.needsGroup() && c.Group == nil:
		return fmt.Errorf("%w: %s needs a group", ErrMalformed, c.Kind)
	case len(c.Group) > MaxGroupIDLen:
		return fmt.Errorf("%w: group id of %d bytes", ErrMalformed, len(c.Group))
	case c.Kind == CmdAdd && len(c.KeyPackages) == 0:
		return fmt.Errorf("%w: add needs key packages", ErrMalformed)
	case c.Kind == CmdRemove && len(c.Leaves) == 0:
		return fmt.Errorf("%w: remove needs leaves", ErrMalformed)
	case c.Kind == CmdPropose && (c.Proposal == nil || !proposalKinds[c.Proposal.Kind]):
		return fmt.Errorf("%w: propose needs a known proposal kind", ErrMalformed)
	case c.Kind == CmdExport && (c.Length <= 0 || c.Length > 1024):
		return fmt.Errorf("%w: export length must be 1 to 1024", ErrMalformed)
	case c.Kind == CmdKeyPackages && (c.Count < 0 || c.Count > 100):
		return fmt.Errorf("%w: key package count must be 0 to 100", ErrMalformed)
	}
	if err := ValidMember(c.Member); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return nil
}

// DecodeEvent decodes and checks an event.
func DecodeEvent(b []byte) (*Event, error) {
	var e Event
	if err := decode(b, &e); err != nil {
		return nil, err
	}
	switch {
	case e.V != Version:
		return nil, fmt.Errorf("%w: version %d (this build speaks %d)", ErrMalformed, e.V, Version)
	case !eventKinds[e.Kind]:
		return nil, fmt.Errorf("%w: unknown event %q", ErrMalformed, e.Kind)
	case e.Kind == EvResult && e.Result == nil:
		return nil, fmt.Errorf("%w: result event without a result", ErrMalformed)
	}
	if err := ValidMember(e.Member); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return &e, nil
}
