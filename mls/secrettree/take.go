package secrettree

import (
	"fmt"
	"math"

	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treemath"
)

// Take is the key of one generation of a ratchet, prepared but not yet
// handed out, and the change of the tree that handing it out makes.
// Preparing it changed nothing: Confirm applies the change, Abort drops
// it. A Take is used by one goroutine.
type Take struct {
	t       *Tree
	version uint64 // of t when prepared
	leaf    treemath.LeafIndex
	kn      KeyNonce
	// consumed is the stored node the leaf's secret was derived from, if
	// the leaf had no ratchets; derived are the nodes kept in its place.
	consumed    treemath.NodeIndex
	hasConsumed bool
	derived     []NodeSecret
	// ratchets are the leaf's ratchets once the key has been handed out.
	ratchets ratchets
	// created are the secrets derived for the tree (cleared on abort),
	// dead the tree's secrets the change deletes (cleared on confirm).
	created, dead []secret.Secret
	done          bool
}

// Change is what confirming a Take changed in the tree's State: the
// entries that appeared and those that died. A ratchet that advanced is an
// entry that died (its old Next) and one that appeared (its new Next).
type Change struct {
	// Added lists the new entries, with copies of their secrets that the
	// caller owns and clears.
	Added State
	// Removed lists the entries that died, without their secrets: the
	// tree cleared them.
	Removed State
}

// TakeKey prepares the key and nonce of the given generation of leaf's
// ratchet, for decrypting a message from the member at leaf, without
// changing the tree. It fails as Key does.
func (t *Tree) TakeKey(leaf treemath.LeafIndex, rt RatchetType, generation uint32) (*Take, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.prepare(leaf, rt, generation, false)
}

// TakeNext prepares the key and nonce of the next unused generation of
// leaf's ratchet, for the member at leaf to encrypt a message, without
// changing the tree. It fails as NextKey does. A message encrypted under
// the key must not be sent unless Confirm succeeds: a failed Confirm
// leaves the generation unused, to be handed out again.
func (t *Tree) TakeNext(leaf treemath.LeafIndex, rt RatchetType) (*Take, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.prepare(leaf, rt, 0, true)
}

// KeyNonce returns the prepared key and nonce. They are the caller's to
// use and clear, before Confirm if it likes (Confirm does not need them);
// Abort and a failing Confirm clear them.
func (tk *Take) KeyNonce() KeyNonce { return tk.kn }

// Confirm hands the key out: the tree becomes what Key or NextKey would
// have left (§9.2: the used secrets are deleted, the skipped generations
// within the tolerance kept). It fails with ErrStaleTake if the take was
// already confirmed or aborted, or if the tree changed since it was
// prepared (another take confirmed, a Key or NextKey call), and with
// ErrCleared after Clear; in the last two cases it clears the key, and
// the tree stays as it is.
func (tk *Take) Confirm() (Change, error) {
	tk.t.mu.Lock()
	defer tk.t.mu.Unlock()
	return tk.apply(true)
}

// Abort drops the take and clears its key and nonce; the tree is as it
// was. It does nothing once the take is confirmed or aborted.
func (tk *Take) Abort() {
	if tk == nil || tk.done {
		return
	}
	tk.discard()
}

// discard clears what the take derived.
func (tk *Take) discard() {
	tk.done = true
	for i := range tk.created {
		tk.created[i].Clear()
	}
	tk.kn.Clear()
	tk.created, tk.dead, tk.derived = nil, nil, nil
}

// prepare builds the take of generation g of leaf's ratchet, or of its
// next generation when sending. t.mu is held.
func (t *Tree) prepare(leaf treemath.LeafIndex, rt RatchetType, g uint32, sending bool) (*Take, error) {
	if t.suite == nil {
		return nil, ErrCleared
	}
	if !rt.valid() {
		return nil, fmt.Errorf("%w: %d", ErrInvalidRatchetType, uint8(rt))
	}
	if uint32(leaf) >= uint32(t.n) {
		return nil, fmt.Errorf("%w: leaf %d of %d", ErrLeafOutOfRange, leaf, t.n)
	}
	tk := &Take{t: t, version: t.version, leaf: leaf}
	rs, ok := t.leaves[leaf]
	if ok {
		tk.ratchets = rs
	} else if err := tk.initLeaf(); err != nil {
		tk.discard()
		return nil, err
	}
	r := tk.ratchets[rt-1]
	if sending {
		if r.next > math.MaxUint32 {
			tk.discard()
			return nil, ErrRatchetExhausted
		}
		g = uint32(r.next)
	}
	nr, err := tk.advance(r, g)
	if err != nil {
		tk.discard()
		if sending {
			return nil, err
		}
		return nil, fmt.Errorf("%w (leaf %d, %v ratchet, generation %d)", err, leaf, rt, g)
	}
	tk.ratchets[rt-1] = nr
	return tk, nil
}

// initLeaf derives the secret of the take's leaf from its deepest derived
// ancestor (§9), keeping the sibling of each node on the way, and turns it
// into the roots of the leaf's two ratchets:
//
//	handshake_ratchet_secret_[N]_[0] = ExpandWithLabel(., "handshake", "", KDF.Nh)
//	application_ratchet_secret_[N]_[0] = ExpandWithLabel(., "application", "", KDF.Nh)
func (tk *Take) initLeaf() error {
	t := tk.t
	x, err := treemath.LeafToNode(tk.leaf, t.full)
	if err != nil {
		return fmt.Errorf("secrettree: internal error: %w", err)
	}
	// chain is the leaf followed by its direct path up to the root; a
	// perfect tree of at most 2^31 leaves is at most 31 levels deep.
	var buf [33]treemath.NodeIndex
	chain := append(buf[:0], x)
	if chain, err = treemath.AppendDirectPath(chain, x, t.full); err != nil {
		return fmt.Errorf("secrettree: internal error: %w", err)
	}
	// The deepest stored node of the chain is where derivation resumes.
	// Every node between it and the leaf is underived: had one been
	// derived and deleted, its children (and so this leaf) would be too.
	start := -1
	for i, y := range chain {
		if _, ok := t.nodes[y]; ok {
			start = i
			break
		}
	}
	if start < 0 {
		return fmt.Errorf("secrettree: internal error: no derived ancestor of leaf %d", tk.leaf)
	}
	tk.consumed, tk.hasConsumed = chain[start], true
	s := t.nodes[chain[start]]
	tk.dead = append(tk.dead, s)
	// The nodes below the stored one are the take's alone: each is
	// consumed by the next step (§9.2: a node whose child is derived is
	// deleted at once, so its sibling is derived now and kept in its
	// place; the RFC's example keeps E and C, deletes D, F and G).
	owned := false
	defer func() {
		if owned {
			s.Clear()
		}
	}()
	for i := start; i > 0; i-- {
		p, child := chain[i], chain[i-1]
		if sib := sibling(child, p); coversMember(sib, t.n) {
			ss, err := t.deriveChild(s, sib, p)
			if err != nil {
				return err
			}
			tk.created = append(tk.created, ss)
			tk.derived = append(tk.derived, NodeSecret{Node: sib, Secret: ss})
		}
		cs, err := t.deriveChild(s, child, p)
		if err != nil {
			return err
		}
		if owned {
			s.Clear()
		}
		s, owned = cs, true
	}
	// s is the leaf's secret, which dies once the ratchets exist (§9.2).
	nh := t.suite.HashLen()
	hs, err := t.suite.ExpandWithLabel(s.Bytes(), "handshake", nil, nh)
	if err != nil {
		return err
	}
	as, err := t.suite.ExpandWithLabel(s.Bytes(), "application", nil, nh)
	if err != nil {
		clear(hs)
		return err
	}
	tk.ratchets = ratchets{{secret: secret.New(hs)}, {secret: secret.New(as)}}
	tk.created = append(tk.created, tk.ratchets[0].secret, tk.ratchets[1].secret)
	return nil
}

// apply installs the take's change, and describes it if report is set.
// t.mu is held.
func (tk *Take) apply(report bool) (Change, error) {
	t := tk.t
	switch {
	case tk.done:
		return Change{}, ErrStaleTake
	case t.suite == nil:
		tk.discard()
		return Change{}, ErrCleared
	case t.version != tk.version:
		tk.discard()
		return Change{}, ErrStaleTake
	}
	var c Change
	if report {
		c = tk.change()
	}
	if tk.hasConsumed {
		delete(t.nodes, tk.consumed)
	}
	for _, nd := range tk.derived {
		t.nodes[nd.Node] = nd.Secret
	}
	t.leaves[tk.leaf] = tk.ratchets
	for i := range tk.dead {
		tk.dead[i].Clear()
	}
	t.version++
	tk.done = true
	tk.created, tk.dead, tk.derived = nil, nil, nil
	return c, nil
}

// change lists what apply is about to change. t.mu is held.
func (tk *Take) change() Change {
	var c Change
	if tk.hasConsumed {
		c.Removed.Nodes = append(c.Removed.Nodes, NodeSecret{Node: tk.consumed})
	}
	for _, nd := range tk.derived {
		c.Added.Nodes = append(c.Added.Nodes, NodeSecret{Node: nd.Node, Secret: secret.Copy(nd.Secret.Bytes())})
	}
	sortNodes(c.Added.Nodes)
	old := tk.t.leaves[tk.leaf] // both nil for a new leaf
	for i, nr := range tk.ratchets {
		or, rt := old[i], RatchetType(i+1)
		if or == nr {
			continue
		}
		if or == nil || or.next != nr.next {
			if or != nil {
				c.Removed.Ratchets = append(c.Removed.Ratchets, RatchetSecret{Leaf: tk.leaf, Type: rt, Next: or.next})
			}
			c.Added.Ratchets = append(c.Added.Ratchets, RatchetSecret{Leaf: tk.leaf, Type: rt, Next: nr.next, Secret: secret.Copy(nr.secret.Bytes())})
		}
		// Both kept lists ascend by generation.
		var ok []KeyNonce
		if or != nil {
			ok = or.kept
		}
		nk := nr.kept
		for len(ok) > 0 || len(nk) > 0 {
			switch {
			case len(nk) == 0 || len(ok) > 0 && ok[0].Generation < nk[0].Generation:
				c.Removed.Kept = append(c.Removed.Kept, KeptKey{Leaf: tk.leaf, Type: rt, KeyNonce: KeyNonce{Generation: ok[0].Generation}})
				ok = ok[1:]
			case len(ok) == 0 || nk[0].Generation < ok[0].Generation:
				c.Added.Kept = append(c.Added.Kept, KeptKey{Leaf: tk.leaf, Type: rt, KeyNonce: copyKeyNonce(nk[0])})
				nk = nk[1:]
			default:
				ok, nk = ok[1:], nk[1:]
			}
		}
	}
	return c
}

func copyKeyNonce(k KeyNonce) KeyNonce {
	return KeyNonce{Generation: k.Generation, Key: secret.Copy(k.Key.Bytes()), Nonce: secret.Copy(k.Nonce.Bytes())}
}
