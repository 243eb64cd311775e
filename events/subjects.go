package events

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrSubject: a subject that is not one of the contract's, or names an
// invalid group or member.
var ErrSubject = errors.New("events: not a subject of the contract")

// DefaultPrefix is the first token of every subject.
const DefaultPrefix = "mls"

// MaxGroupIDLen bounds a group id in a subject (storage's bound).
const MaxGroupIDLen = 255

// Subjects builds and parses the contract's subjects under a prefix.
type Subjects struct {
	// Prefix is the first token(s) of every subject; DefaultPrefix if
	// empty. Deployments that share a NATS account use different prefixes.
	Prefix string
}

func (s Subjects) p() string {
	if s.Prefix == "" {
		return DefaultPrefix
	}
	return s.Prefix
}

// GroupToken is a group id as a subject token: "x" and the id in hex, so
// that any byte string, the empty one included, is one token.
func GroupToken(groupID []byte) string { return "x" + hex.EncodeToString(groupID) }

// ParseGroupToken reverses GroupToken.
func ParseGroupToken(tok string) ([]byte, error) {
	h, ok := strings.CutPrefix(tok, "x")
	if !ok || len(h) > 2*MaxGroupIDLen {
		return nil, fmt.Errorf("%w: group token %q", ErrSubject, tok)
	}
	id, err := hex.DecodeString(h)
	if err != nil {
		return nil, fmt.Errorf("%w: group token %q", ErrSubject, tok)
	}
	return id, nil
}

// ValidMember checks a hosted member's id: 1 to 64 bytes of
// [A-Za-z0-9_-], a subject token (and a jetstore member).
func ValidMember(m string) error {
	if m == "" || len(m) > 64 {
		return fmt.Errorf("%w: member id must be 1 to 64 bytes", ErrSubject)
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%w: member id byte %#02x at %d", ErrSubject, c, i)
		}
	}
	return nil
}

// noGroup is the group token of commands that name no group yet.
const noGroup = "_"

// Msg is the subject of MLS messages to a group.
func (s Subjects) Msg(groupID []byte) string { return s.p() + ".in." + GroupToken(groupID) + ".msg" }

// Epoch is the subject of the commit that ends the group's epoch.
func (s Subjects) Epoch(groupID []byte, epoch uint64) string {
	return s.p() + ".in." + GroupToken(groupID) + ".epoch." + strconv.FormatUint(epoch, 10)
}

// Welcome is the subject of a Welcome for a hosted member.
func (s Subjects) Welcome(groupID []byte, member string) string {
	return s.p() + ".in." + GroupToken(groupID) + ".welcome." + member
}

// OutsideWelcome is the subject of a Welcome for members that are not
// hosted here (clients of other implementations read it from the log).
func (s Subjects) OutsideWelcome(groupID []byte) string {
	return s.p() + ".in." + GroupToken(groupID) + ".welcome"
}

// GroupInfo is the subject of a group's GroupInfo, for external joins.
func (s Subjects) GroupInfo(groupID []byte) string {
	return s.p() + ".in." + GroupToken(groupID) + ".groupinfo"
}

// Command is the subject of a command for member about a group (nil: a
// command that names no group, such as creating the member).
func (s Subjects) Command(member string, groupID []byte) string {
	g := noGroup
	if groupID != nil {
		g = GroupToken(groupID)
	}
	return s.p() + ".in." + g + ".cmd." + member
}

// Event is the subject of an event for member about a group (nil: none).
func (s Subjects) Event(member string, groupID []byte, kind EventKind) string {
	g := noGroup
	if groupID != nil {
		g = GroupToken(groupID)
	}
	return s.p() + ".ev." + member + "." + g + "." + string(kind)
}

// Events is the wildcard of every event for member (all groups, kinds).
func (s Subjects) Events(member string) string { return s.p() + ".ev." + member + ".>" }

// DeadLetter is the subject of copies of a group's messages that can
// never apply.
func (s Subjects) DeadLetter(groupID []byte) string {
	return s.p() + ".dlq." + GroupToken(groupID)
}

// InputKind is what a subject under <prefix>.in carries.
type InputKind uint8

const (
	InputMsg InputKind = iota + 1
	InputCommit
	InputWelcome
	InputGroupInfo
	InputCommand
)

// Input is a parsed input subject.
type Input struct {
	Kind    InputKind
	GroupID []byte // nil for a command that names no group
	Member  string // Welcome and command
	Epoch   uint64 // commit
}

// ParseInput parses a subject of the log stream, as published
// (<prefix>.in...) or as stored after the partition transform
// (<prefix>.p.<n>...).
func (s Subjects) ParseInput(subject string) (Input, error) {
	rest, ok := strings.CutPrefix(subject, s.p()+".")
	if !ok {
		return Input{}, fmt.Errorf("%w: %q", ErrSubject, subject)
	}
	t := strings.Split(rest, ".")
	switch {
	case len(t) >= 1 && t[0] == "in":
		t = t[1:]
	case len(t) >= 2 && t[0] == "p":
		t = t[2:]
	default:
		return Input{}, fmt.Errorf("%w: %q", ErrSubject, subject)
	}
	if len(t) < 2 {
		return Input{}, fmt.Errorf("%w: %q", ErrSubject, subject)
	}
	var in Input
	if t[0] != noGroup {
		gid, err := ParseGroupToken(t[0])
		if err != nil {
			return Input{}, err
		}
		in.GroupID = gid
	}
	switch {
	case t[1] == "msg" && len(t) == 2:
		in.Kind = InputMsg
	case t[1] == "groupinfo" && len(t) == 2:
		in.Kind = InputGroupInfo
	case t[1] == "epoch" && len(t) == 3:
		e, err := strconv.ParseUint(t[2], 10, 64)
		if err != nil {
			return Input{}, fmt.Errorf("%w: epoch %q", ErrSubject, t[2])
		}
		in.Kind, in.Epoch = InputCommit, e
	case t[1] == "welcome" && len(t) == 2:
		in.Kind = InputWelcome // for outside members
	case t[1] == "welcome" && len(t) == 3:
		in.Kind, in.Member = InputWelcome, t[2]
	case t[1] == "cmd" && len(t) == 3:
		in.Kind, in.Member = InputCommand, t[2]
	default:
		return Input{}, fmt.Errorf("%w: %q", ErrSubject, subject)
	}
	if in.GroupID == nil && in.Kind != InputCommand {
		return Input{}, fmt.Errorf("%w: %q names no group", ErrSubject, subject)
	}
	if in.Member != "" {
		if err := ValidMember(in.Member); err != nil {
			return Input{}, err
		}
	}
	return in, nil
}

// Streams.

// Defaults of the streams.
const (
	DefaultLogStream    = "MLS_LOG"
	DefaultEventsStream = "MLS_EVENTS"
	DefaultPartitions   = 16
	// EventsMaxAge is how long events are kept by default: long enough for
	// a consumer that was down for a day to catch up, short enough that
	// decrypted application messages do not pile up in the stream.
	EventsMaxAge = 24 * time.Hour
	// MaxPayload is the largest input a worker accepts: a commit or Welcome
	// for a group of 50,000 members with the tree out of band fits.
	MaxPayload = 1 << 20
)

// PartitionToken is the token after <prefix>.p that the log stream's
// transform writes: the partition of a group, 0 to partitions-1.
func (s Subjects) PartitionFilter(partition int) string {
	return s.p() + ".p." + strconv.Itoa(partition) + ".>"
}

// LogStream is the configuration of the log stream: every input subject,
// mapped by a subject transform into partitions by group token (FNV-1a,
// ADR-36), kept by limits (operators bound it with MaxAge or MaxBytes as
// their replay needs require; workers never need more than what is not
// yet applied), with a duplicate window for Nats-Msg-Id.
func (s Subjects) LogStream(name string, partitions, replicas int, storage jetstream.StorageType) jetstream.StreamConfig {
	if name == "" {
		name = DefaultLogStream
	}
	if partitions <= 0 {
		partitions = DefaultPartitions
	}
	return jetstream.StreamConfig{
		Name:     name,
		Subjects: []string{s.p() + ".in.>"},
		SubjectTransform: &jetstream.SubjectTransformConfig{
			Source:      s.p() + ".in.*.>",
			Destination: fmt.Sprintf("%s.p.{{partition(%d,1)}}.{{wildcard(1)}}.>", s.p(), partitions),
		},
		Storage:     storage,
		Replicas:    replicas,
		Duplicates:  2 * time.Minute,
		AllowDirect: true,
		MaxMsgSize:  MaxPayload,
	}
}

// EventsStream is the configuration of the events stream, which keeps
// events for maxAge (EventsMaxAge if 0).
func (s Subjects) EventsStream(name string, maxAge time.Duration, replicas int, storage jetstream.StorageType) jetstream.StreamConfig {
	if name == "" {
		name = DefaultEventsStream
	}
	if maxAge == 0 {
		maxAge = EventsMaxAge
	}
	return jetstream.StreamConfig{
		Name:        name,
		Subjects:    []string{s.p() + ".ev.>", s.p() + ".dlq.>"},
		Storage:     storage,
		Replicas:    replicas,
		MaxAge:      maxAge,
		Duplicates:  2 * time.Minute,
		AllowDirect: true,
	}
}

// AnyPartition is the stored form of an input subject (<prefix>.in...)
// with the partition as a wildcard, for reading the log by subject.
func (s Subjects) AnyPartition(subject string) string {
	rest, ok := strings.CutPrefix(subject, s.p()+".in.")
	if !ok {
		return subject
	}
	return s.p() + ".p.*." + rest
}
