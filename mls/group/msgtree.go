package group

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/persist"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/secrettree"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/storage"
)

// msgTree is the secret tree of one epoch and the sender ratchets hanging
// from it (§9, §9.1), as the group persists it: every live secret is a
// key-material record whose name changes whenever the secret does
// (storage's records of key material are written once), and every change
// is logged as it is confirmed. The keys and the deletion schedule (§9.2)
// are package secrettree's; a key is taken in two steps (key or next, then
// commit or abort) because a group must leave its state unchanged when it
// rejects a message.
type msgTree struct {
	st         *secrettree.Tree
	epoch      uint64
	n          treemath.LeafCount
	maxForward uint32
	log        *changeLog
}

// The ratchet types of private.go are secrettree's.
const (
	ratchetHandshake   = int(secrettree.Handshake)
	ratchetApplication = int(secrettree.Application)
)

// keyNonce is a content key and nonce handed out by the tree; the caller
// owns and clears it.
type keyNonce struct {
	gen        uint32
	key, nonce secret.Secret
}

func (k *keyNonce) clear() {
	k.key.Clear()
	k.nonce.Clear()
}

func newMsgTree(suite *ciphersuite.Suite, epoch uint64, encryption secret.Secret, leaves treemath.LeafCount, tol, maxFwd uint32, log *changeLog) (*msgTree, error) {
	st, err := secrettree.New(suite, encryption, leaves, secrettree.WithOutOfOrderTolerance(tol), secrettree.WithMaxForwardDistance(maxFwd))
	if err != nil {
		return nil, fmt.Errorf("group: internal error: secret tree of %d leaves: %w", leaves, err)
	}
	t := &msgTree{st: st, epoch: epoch, n: leaves, maxForward: maxFwd, log: log}
	if log != nil {
		t.logAll(log)
	}
	return t, nil
}

// Record names (persist.SecretNodeName, RatchetName, KeptKeyName): the
// name of a key-material record changes whenever its secret does. One of
// them is written for every message sent or received, so their envelopes
// are built without reflection, straight into a buffer of their size that
// the log takes over.
func (t *msgTree) prefix() string { return persist.EpochPrefix(t.epoch) }

func (t *msgTree) nodeName(x treemath.NodeIndex) string {
	return persist.SecretNodeName(t.epoch, uint32(x))
}

func (t *msgTree) ratchetName(l treemath.LeafIndex, rt secrettree.RatchetType, next uint64) string {
	return persist.RatchetName(t.epoch, uint32(l), rt == secrettree.Handshake, next)
}

func (t *msgTree) keyName(l treemath.LeafIndex, rt secrettree.RatchetType, gen uint32) string {
	return persist.KeptKeyName(t.epoch, uint32(l), rt == secrettree.Handshake, gen)
}

// logState logs every entry of s as a record put, in new envelopes the log
// owns.
func (t *msgTree) logState(log *changeLog, s *secrettree.State) {
	add := func(name string, v []byte) { log.own(groupScope, storage.KeyMaterial, name, v) }
	for _, nd := range s.Nodes {
		add(t.nodeName(nd.Node), persist.ValueEnvelope(persist.ValueVersion, nd.Secret.Bytes()))
	}
	for _, r := range s.Ratchets {
		// An exhausted ratchet has no secret: its record holds an empty one.
		add(t.ratchetName(r.Leaf, r.Type, r.Next), persist.ValueEnvelope(persist.ValueVersion, r.Secret.Bytes()))
	}
	for _, k := range s.Kept {
		add(t.keyName(k.Leaf, k.Type, k.Generation), persist.KeptKeyValue(k.Key, k.Nonce))
	}
}

// logDeleted logs the deletion of the record of every entry of s.
func (t *msgTree) logDeleted(log *changeLog, s *secrettree.State) {
	del := func(name string) { log.del(groupScope, storage.KeyMaterial, name) }
	for _, nd := range s.Nodes {
		del(t.nodeName(nd.Node))
	}
	for _, r := range s.Ratchets {
		del(t.ratchetName(r.Leaf, r.Type, r.Next))
	}
	for _, k := range s.Kept {
		del(t.keyName(k.Leaf, k.Type, k.Generation))
	}
}

// msgTake is a prepared change of the tree: the key of one generation and
// the tree as it is once that key has been handed out.
type msgTake struct {
	t  *msgTree
	st *secrettree.Take
	kn keyNonce // shares the secrets of st's key
}

// next prepares the next unused generation of leaf's ratchet, for sending.
func (t *msgTree) next(leaf treemath.LeafIndex, rt int) (*msgTake, error) {
	return t.prepare(leaf, rt, 0, true)
}

// key prepares generation gen of leaf's ratchet, for receiving.
func (t *msgTree) key(leaf treemath.LeafIndex, rt int, gen uint32) (*msgTake, error) {
	return t.prepare(leaf, rt, gen, false)
}

func (t *msgTree) prepare(leaf treemath.LeafIndex, rt int, gen uint32, sending bool) (*msgTake, error) {
	if t == nil || t.st == nil {
		return nil, fmt.Errorf("%w: secret tree deleted", ErrWrongEpoch)
	}
	if uint32(leaf) >= uint32(t.n) {
		return nil, fmt.Errorf("%w: leaf %d outside a secret tree of %d leaves", ErrSenderNotMember, leaf, t.n)
	}
	var st *secrettree.Take
	var err error
	if sending {
		st, err = t.st.TakeNext(leaf, secrettree.RatchetType(rt))
	} else {
		st, err = t.st.TakeKey(leaf, secrettree.RatchetType(rt), gen)
	}
	switch {
	case err == nil:
		kn := st.KeyNonce()
		return &msgTake{t: t, st: st, kn: keyNonce{gen: kn.Generation, key: kn.Key, nonce: kn.Nonce}}, nil
	case errors.Is(err, secrettree.ErrGenerationConsumed):
		return nil, fmt.Errorf("%w (leaf %d, generation %d)", ErrReplay, leaf, gen)
	case errors.Is(err, secrettree.ErrTooDistantInFuture):
		return nil, fmt.Errorf("%w: more than %d generations ahead (leaf %d, generation %d)", ErrTooFarAhead, t.maxForward, leaf, gen)
	case errors.Is(err, secrettree.ErrRatchetExhausted):
		return nil, fmt.Errorf("%w: ratchet exhausted", ErrInvalidArgument)
	case errors.Is(err, secrettree.ErrCleared):
		return nil, fmt.Errorf("%w: secret tree deleted", ErrWrongEpoch)
	}
	return nil, fmt.Errorf("group: internal error: secret tree: %w", err)
}

// commit hands the key out, deletes the secrets that died (§9.2) and logs
// the record changes. The key and nonce stay with the caller, who clears
// them.
func (tk *msgTake) commit() error {
	if tk == nil {
		return nil
	}
	c, err := tk.st.Confirm()
	if err != nil {
		// Only a take already used, or prepared before another changed
		// the tree; the group holds one take of a tree at a time. Nothing
		// changed, so the caller must not hand out what the key
		// protected: the generation is still unused.
		return fmt.Errorf("group: internal error: %w", err)
	}
	if log := tk.t.log; log != nil {
		tk.t.logDeleted(log, &c.Removed)
		tk.t.logState(log, &c.Added)
	}
	c.Added.Clear()
	return nil
}

// abort drops the prepared change; the tree is as it was. The key and
// nonce are cleared too.
func (tk *msgTake) abort() {
	if tk != nil {
		tk.st.Abort()
	}
}

// clear deletes every secret of the tree, as when its epoch is dropped.
// With log set, the deletion of every record is logged.
func (t *msgTree) clear() {
	if t == nil || t.st == nil {
		return
	}
	if t.log != nil {
		s := t.st.Export()
		t.logDeleted(t.log, &s)
		s.Clear()
	}
	t.st.Clear()
	t.st = nil
}

// records returns every live secret of the tree as key-material records
// (in the scope of the empty group id), owned by the caller.
func (t *msgTree) records() []storage.Record {
	l := newChangeLog()
	t.logAll(l)
	return l.take(nil).Puts
}

// logAll logs every live secret of the tree as key-material records, in
// new envelopes the log owns.
func (t *msgTree) logAll(log *changeLog) {
	if t == nil || t.st == nil {
		return
	}
	s := t.st.Export()
	t.logState(log, &s)
	s.Clear()
}

// restoreMsgTree rebuilds a tree from the key-material records logAll
// wrote: recs may hold every key-material record of the group, those
// under the epoch's prefix but its secrets and sender-data are the
// tree's.
func restoreMsgTree(suite *ciphersuite.Suite, epoch uint64, leaves treemath.LeafCount, tol, maxFwd uint32, recs []storage.Record, log *changeLog) (*msgTree, error) {
	t := &msgTree{epoch: epoch, n: leaves, maxForward: maxFwd, log: log}
	var s secrettree.State
	bad := func(name string, err error) (*msgTree, error) {
		s.Clear()
		if err == nil {
			return nil, fmt.Errorf("%w: record %q", ErrCorruptState, name)
		}
		return nil, corrupt(name, err)
	}
	nh, nk, nn := suite.HashLen(), suite.KeyLen(), suite.NonceLen()
	for _, r := range recs {
		rest, ok := strings.CutPrefix(r.Key.Name, t.prefix())
		if !ok || rest == "secrets" || rest == "sender-data" {
			continue
		}
		parts := strings.Split(rest, "/")
		switch {
		case parts[0] == "tree" && len(parts) == 2:
			x, err := strconv.ParseUint(parts[1], 10, 32)
			if err != nil {
				return bad(r.Key.Name, err)
			}
			sec, err := persist.OpenSecret(r.Value, persist.ValueVersion, nh)
			if err != nil {
				return bad(r.Key.Name, err)
			}
			s.Nodes = append(s.Nodes, secrettree.NodeSecret{Node: treemath.NodeIndex(x), Secret: sec})
		case (parts[0] == "ratchet" || parts[0] == "key") && len(parts) == 4:
			l, err1 := strconv.ParseUint(parts[1], 10, 32)
			g, err2 := strconv.ParseUint(parts[3], 10, 33)
			rt := secrettree.Handshake
			switch parts[2] {
			case "h":
			case "a":
				rt = secrettree.Application
			default:
				return bad(r.Key.Name, nil)
			}
			if err1 != nil || err2 != nil || l >= uint64(leaves) || g > 1<<32 {
				return bad(r.Key.Name, nil)
			}
			if parts[0] == "ratchet" {
				// An exhausted ratchet (generation 2^32) has no secret.
				n := nh
				if g == 1<<32 {
					n = 0
				}
				sec, err := persist.OpenSecret(r.Value, persist.ValueVersion, n)
				if err != nil {
					return bad(r.Key.Name, err)
				}
				s.Ratchets = append(s.Ratchets, secrettree.RatchetSecret{Leaf: treemath.LeafIndex(l), Type: rt, Next: g, Secret: sec})
				continue
			}
			if g >= 1<<32 {
				return bad(r.Key.Name, nil)
			}
			key, nonce, err := persist.OpenKeptKey(r.Value, nk, nn)
			if err != nil {
				return bad(r.Key.Name, err)
			}
			s.Kept = append(s.Kept, secrettree.KeptKey{Leaf: treemath.LeafIndex(l), Type: rt,
				KeyNonce: secrettree.KeyNonce{Generation: uint32(g), Key: key, Nonce: nonce}})
		default:
			return bad(r.Key.Name, nil)
		}
	}
	st, err := secrettree.Restore(suite, leaves, s, secrettree.WithOutOfOrderTolerance(tol), secrettree.WithMaxForwardDistance(maxFwd))
	if err != nil {
		return nil, fmt.Errorf("%w: secret tree of epoch %d: %w", ErrCorruptState, epoch, err)
	}
	t.st = st
	return t, nil
}
