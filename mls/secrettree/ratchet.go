package secrettree

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/secret"
)

// ratchet is one hash ratchet of a leaf (§9.1). Once in a Tree it is never
// modified, only replaced, so that a Take can share what it leaves alone.
type ratchet struct {
	// secret is ratchet_secret_[N]_[next]; it is empty once the ratchet is
	// exhausted.
	secret secret.Secret
	// next is the generation of secret, and 2^32 once every generation
	// has been derived.
	next uint64
	// kept holds the unconsumed keys of skipped generations below next,
	// in increasing generation order.
	kept []KeyNonce
}

// advance returns the ratchet r once the key of generation g has been
// handed out, and sets that key as the take's: from kept if g is behind
// the ratchet, otherwise by ratcheting forward to g, keeping the keys of
// the skipped generations the tolerance allows. r is left as it is.
func (tk *Take) advance(r *ratchet, g uint32) (*ratchet, error) {
	suite, cfg := tk.t.suite, tk.t.cfg
	if uint64(g) < r.next {
		i, found := slices.BinarySearchFunc(r.kept, g, func(k KeyNonce, g uint32) int {
			return cmp.Compare(k.Generation, g)
		})
		if !found {
			return nil, ErrGenerationConsumed
		}
		// The tree's copy dies on Confirm; the caller gets its own, which
		// it may clear before then without touching the tree.
		tk.kn = copyKeyNonce(r.kept[i])
		tk.dead = append(tk.dead, r.kept[i].Key, r.kept[i].Nonce)
		return &ratchet{secret: r.secret, next: r.next, kept: slices.Delete(slices.Clone(r.kept), i, i+1)}, nil
	}
	if uint64(g)-r.next > uint64(cfg.maxForward) {
		return nil, fmt.Errorf("%w: %d generations ahead, at most %d allowed", ErrTooDistantInFuture, uint64(g)-r.next, cfg.maxForward)
	}
	// cur starts as the ratchet's own secret; the ones after it are the
	// take's and die as soon as the next is derived (§9.2).
	cur, owned := r.secret, false
	defer func() {
		if owned {
			cur.Clear()
		}
	}()
	var skipped []KeyNonce
	for j := uint32(r.next); j < g; j++ {
		if g-j <= cfg.tolerance {
			kn, err := keyNonce(suite, cur, j)
			if err != nil {
				return nil, err
			}
			skipped = append(skipped, kn)
			tk.created = append(tk.created, kn.Key, kn.Nonce)
		}
		next, err := advanceSecret(suite, cur, j)
		if err != nil {
			return nil, err
		}
		if owned {
			cur.Clear()
		}
		cur, owned = next, true
	}
	kn, err := keyNonce(suite, cur, g)
	if err != nil {
		return nil, err
	}
	tk.kn = kn
	nr := &ratchet{next: uint64(g) + 1}
	if g < math.MaxUint32 {
		if nr.secret, err = advanceSecret(suite, cur, g); err != nil {
			return nil, err
		}
		tk.created = append(tk.created, nr.secret)
	}
	tk.dead = append(tk.dead, r.secret)
	// Kept keys more than the tolerance below g die with this step.
	kept := append(slices.Clone(r.kept), skipped...)
	drop := 0
	for drop < len(kept) && uint64(g)-uint64(kept[drop].Generation) > uint64(cfg.tolerance) {
		tk.dead = append(tk.dead, kept[drop].Key, kept[drop].Nonce)
		drop++
	}
	nr.kept = kept[drop:]
	return nr, nil
}

// keyNonce derives generation j's key and nonce from ratchet_secret_[N]_[j]
// (§9.1):
//
//	ratchet_nonce_[N]_[j] = DeriveTreeSecret(., "nonce", j, AEAD.Nn)
//	ratchet_key_[N]_[j] = DeriveTreeSecret(., "key", j, AEAD.Nk)
func keyNonce(suite *ciphersuite.Suite, s secret.Secret, j uint32) (KeyNonce, error) {
	k, err := suite.DeriveTreeSecret(s.Bytes(), "key", j, suite.KeyLen())
	if err != nil {
		return KeyNonce{}, err
	}
	n, err := suite.DeriveTreeSecret(s.Bytes(), "nonce", j, suite.NonceLen())
	if err != nil {
		clear(k)
		return KeyNonce{}, err
	}
	return KeyNonce{Generation: j, Key: secret.New(k), Nonce: secret.New(n)}, nil
}

// advanceSecret derives ratchet_secret_[N]_[j+1] =
// DeriveTreeSecret(ratchet_secret_[N]_[j], "secret", j, KDF.Nh) (§9.1).
func advanceSecret(suite *ciphersuite.Suite, s secret.Secret, j uint32) (secret.Secret, error) {
	b, err := suite.DeriveTreeSecret(s.Bytes(), "secret", j, suite.HashLen())
	if err != nil {
		return secret.Secret{}, err
	}
	return secret.New(b), nil
}

// clear deletes every secret of the ratchet.
func (r *ratchet) clear() {
	r.secret.Clear()
	for i := range r.kept {
		r.kept[i].Clear()
	}
}
