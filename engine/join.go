package engine

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/storage"
)

const keyPackagePrefix = "key-package/"

// KeyPackageOptions are the optional inputs of NewKeyPackage.
type KeyPackageOptions = group.KeyPackageOptions

// NewKeyPackage makes a KeyPackage (RFC 9420 §10) for the identity of
// signer and cred in cfg.Suite, stores it with its private keys and the
// signature key, and returns it for publishing. Joining a group with it
// deletes it, unless opts.LastResort is set; DeleteKeyPackage deletes it
// explicitly.
func NewKeyPackage(ctx context.Context, store storage.Backend, signer *ciphersuite.SigningKey, cfg *Config, cred wire.Credential, opts *KeyPackageOptions) (*wire.KeyPackage, error) {
	c := orDefault(cfg)
	if signer == nil {
		return nil, fmt.Errorf("%w: nil signer", group.ErrInvalidArgument)
	}
	b, err := group.NewKeyPackage(c.suite(), c.identity(signer, cred), &c.Config, opts)
	if err != nil {
		return nil, err
	}
	defer b.Clear()
	if err := storeSigner(ctx, store, c.suite(), signer); err != nil {
		return nil, err
	}
	puts := b.Records()
	defer clearRecords(puts)
	if _, err := apply(ctx, store, &storage.Unit{Scope: storage.ClientScope(), Puts: puts}, c.ApplyAttempts); err != nil {
		return nil, storageErr("storing key package", err)
	}
	return b.KeyPackage, nil
}

func keyPackageKeys(ref []byte) []storage.Key {
	name := keyPackagePrefix + hex.EncodeToString(ref)
	return []storage.Key{
		{Scope: storage.ClientScope(), Class: storage.Public, Name: name},
		{Scope: storage.ClientScope(), Class: storage.KeyMaterial, Name: name},
	}
}

// DeleteKeyPackage erases a stored key package and its private keys, by
// its KeyPackageRef (§5.2); the way to retire a last-resort one.
func DeleteKeyPackage(ctx context.Context, store storage.Backend, ref []byte) error {
	if _, err := apply(ctx, store, &storage.Unit{Scope: storage.ClientScope(), Deletes: keyPackageKeys(ref)}, 0); err != nil {
		return storageErr("deleting key package", err)
	}
	return nil
}

// KeyPackages returns the stored key packages (public parts).
func KeyPackages(ctx context.Context, store storage.Backend) ([]*wire.KeyPackage, error) {
	rs, err := store.List(ctx, storage.ClientScope(), storage.Public, keyPackagePrefix)
	if err != nil {
		return nil, storageErr("listing key packages", err)
	}
	out := make([]*wire.KeyPackage, 0, len(rs))
	for _, r := range rs {
		kp, err := wire.Unmarshal[wire.KeyPackage](r.Value)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrCorruptRecord, r.Key.Name, err)
		}
		out = append(out, kp)
	}
	return out, nil
}

// KeyPackageRef returns the KeyPackageRef of kp (RFC 9420 §5.2), the id
// DeleteKeyPackage and NewMemberAddProposal take.
func KeyPackageRef(kp *wire.KeyPackage) ([]byte, error) {
	s, err := ciphersuite.Lookup(ciphersuite.ID(kp.CipherSuite))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", group.ErrUnsupported, err)
	}
	return s.MakeKeyPackageRef(kp.Bytes()), nil
}

// NewMemberAddProposal builds, from a stored key package, the proposal of
// a client that asks to join groupID at epoch (§12.1.8, sender
// new_member_proposal); a member commits it, and the client joins with
// JoinGroup from the Welcome. The key package stays stored.
func NewMemberAddProposal(ctx context.Context, store storage.Backend, ref, groupID []byte, epoch uint64) (*wire.MLSMessage, error) {
	b, err := loadBundle(ctx, store, ref)
	if err != nil {
		return nil, err
	}
	defer b.Clear()
	return group.NewMemberAddProposal(groupID, epoch, b)
}

// JoinOptions are the optional inputs of JoinGroup.
type JoinOptions struct {
	// RatchetTree is the encoded ratchet tree for a Welcome without the
	// ratchet_tree extension (§12.4.3.3).
	RatchetTree []byte
	// PSKs resolves PSKs the Welcome names before cfg.PSKs.
	PSKs group.PSKResolver
	// Predecessor is this member's group that the new one reinitializes
	// or branches from (§11.2, §11.3).
	Predecessor *Group
}

// findKeyPackage returns the stored key package a Welcome is for, or the
// id of the group the Welcome was already joined into (its joined/<ref>
// record), reading both with one request (more only for a Welcome to
// more than storage.MaxReadKeys/2 new members).
func findKeyPackage(ctx context.Context, store storage.Backend, ref string, w *wire.Welcome) (b *group.KeyPackageBundle, joined []byte, err error) {
	keys := []storage.Key{joinedKey(ref)}
	for _, s := range w.Secrets {
		// A KeyPackageRef is a hash of at most 64 bytes (§5.2); a longer
		// one names no stored key package.
		if len(s.NewMember) <= 64 {
			keys = append(keys, keyPackageKeys(s.NewMember)...)
		}
	}
	found := map[storage.Key][]byte{}
	defer func() {
		for k, v := range found {
			if k.Class == storage.KeyMaterial {
				clear(v)
			}
		}
	}()
	for len(keys) > 0 {
		n := min(len(keys), storage.MaxReadKeys&^1)
		rs, err := store.GetMany(ctx, keys[:n])
		if err != nil {
			return nil, nil, storageErr("reading key packages", err)
		}
		for _, r := range rs {
			found[r.Key] = r.Value
		}
		if v, ok := found[keys[0]]; ok && keys[0] == joinedKey(ref) {
			gid, err := decodeJoined(v)
			return nil, gid, err
		}
		keys = keys[n:]
	}
	for _, s := range w.Secrets {
		if len(s.NewMember) > 64 {
			continue
		}
		ks := keyPackageKeys(s.NewMember)
		pub, ok1 := found[ks[0]]
		km, ok2 := found[ks[1]]
		if ok1 && ok2 {
			b, err := restoreBundle(ctx, store, pub, km)
			return b, nil, err
		}
	}
	return nil, nil, ErrNoKeyPackage
}

// loadBundle reads a stored key package and its private keys by
// reference; ErrNoKeyPackage if either is missing (used, or being
// deleted).
func loadBundle(ctx context.Context, store storage.Backend, ref []byte) (*group.KeyPackageBundle, error) {
	if len(ref) > 64 {
		return nil, ErrNoKeyPackage
	}
	rs, err := store.GetMany(ctx, keyPackageKeys(ref))
	if err != nil {
		return nil, storageErr("reading key package", err)
	}
	defer func() {
		for _, r := range rs {
			if r.Key.Class == storage.KeyMaterial {
				clear(r.Value)
			}
		}
	}()
	// Sorted by class: the public part first.
	if len(rs) != 2 {
		return nil, ErrNoKeyPackage
	}
	return restoreBundle(ctx, store, rs[0].Value, rs[1].Value)
}

func restoreBundle(ctx context.Context, store storage.Backend, pub, km []byte) (*group.KeyPackageBundle, error) {
	kp, err := wire.Unmarshal[wire.KeyPackage](pub)
	if err != nil {
		return nil, fmt.Errorf("%w: key package: %w", ErrCorruptRecord, err)
	}
	signer, err := loadSigner(ctx, store, signerRef(kp.LeafNode.SignatureKey))
	if err != nil {
		return nil, err
	}
	return group.RestoreKeyPackageBundle(pub, km, signer)
}

// checkLifetime refuses a key package of ours that expired: a Welcome to
// it would put a leaf in the group that every member must reject (§7.3).
func checkLifetime(kp *wire.KeyPackage, now func() time.Time) error {
	t := time.Now()
	if now != nil {
		if t = now(); t.IsZero() {
			return nil
		}
	}
	lt := kp.LeafNode.Lifetime
	if lt == nil {
		return nil
	}
	s := uint64(t.Unix())
	if s < lt.NotBefore || s > lt.NotAfter {
		return group.ErrKeyPackageExpired
	}
	return nil
}

// JoinGroup joins a group from a Welcome (§12.4.3.1) with the stored key
// package it is for, and stores the group; in the same unit it deletes the
// key package and its private keys, unless it is a last-resort one. msg is
// an MLSMessage carrying the Welcome.
//
// Joining is idempotent: the unit also records which group the Welcome
// was joined into, so that the same Welcome again (redelivered, or retried
// after ErrUnknownOutcome, in this process or another) loads that group
// instead of failing for want of the key package it used. The record is
// deleted with the group.
func JoinGroup(ctx context.Context, store storage.Backend, msg *wire.MLSMessage, cfg *Config, opts *JoinOptions) (*Group, error) {
	c := orDefault(cfg)
	if msg == nil || msg.Welcome == nil {
		return nil, fmt.Errorf("%w: not a Welcome", group.ErrInvalidWelcome)
	}
	if opts == nil {
		opts = &JoinOptions{}
	}
	ref := welcomeRef(msg.Bytes())
	b, joined, err := findKeyPackage(ctx, store, ref, msg.Welcome)
	if joined != nil {
		return LoadGroup(ctx, store, joined, &c)
	}
	if err != nil {
		return nil, err
	}
	defer b.Clear()
	if err := checkLifetime(b.KeyPackage, c.Now); err != nil {
		return nil, err
	}
	oc := withStore(store, &c, ctx)
	jo := &group.JoinOptions{RatchetTree: opts.RatchetTree, PSKs: opts.PSKs}
	var g *group.Group
	join := func() { g, err = group.Join(&c.Config, msg.Welcome, b, jo) }
	if p := opts.Predecessor; p != nil {
		if perr := p.read(func(pg *group.Group) { jo.Predecessor = pg; join() }); perr != nil {
			return nil, perr
		}
	} else {
		join()
	}
	if err != nil {
		return nil, err
	}
	h := newHandle(store, &c, oc, b.SigningKey, g)
	h.meta.Welcome = ref
	// restoreBundle read the signature key from the store.
	if err := h.create(ctx, false); err != nil {
		return nil, err
	}
	h.log.Info("joined group", "group", h.logID(), "epoch", g.Epoch(), "last_resort", b.LastResort())
	return h, nil
}
