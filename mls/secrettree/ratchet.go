package secrettree

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/secret"
)

// ratchet is one hash ratchet of a leaf (§9.1).
type ratchet struct {
	// secret is ratchet_secret_[N]_[next]; it is empty once the ratchet is
	// exhausted.
	secret secret.Secret
	// next is the generation of secret, and 2^32 once every generation
	// has been derived.
	next uint64
	// kept holds the unconsumed keys of skipped generations below next,
	// in increasing generation order, at most the tolerance many.
	kept []KeyNonce
}

// take returns the key and nonce of generation g and forgets them: from
// kept if g is behind the ratchet, otherwise by ratcheting forward to g,
// keeping the keys of the skipped generations the tolerance allows.
func (r *ratchet) take(suite *ciphersuite.Suite, g uint32, cfg config) (KeyNonce, error) {
	if uint64(g) < r.next {
		i, found := slices.BinarySearchFunc(r.kept, g, func(k KeyNonce, g uint32) int {
			return cmp.Compare(k.Generation, g)
		})
		if !found {
			return KeyNonce{}, ErrGenerationConsumed
		}
		kn := r.kept[i]
		r.kept = slices.Delete(r.kept, i, i+1)
		return kn, nil
	}
	if uint64(g)-r.next > uint64(cfg.maxForward) {
		return KeyNonce{}, fmt.Errorf("%w: %d generations ahead, at most %d allowed", ErrTooDistantInFuture, uint64(g)-r.next, cfg.maxForward)
	}
	// cur starts as the ratchet's own secret; the secrets after it are
	// owned here until the end, so that a failure part-way leaves the
	// ratchet as it was.
	cur, owned := r.secret, false
	var skipped []KeyNonce
	fail := func(err error) (KeyNonce, error) {
		if owned {
			cur.Clear()
		}
		for i := range skipped {
			skipped[i].Clear()
		}
		return KeyNonce{}, err
	}
	for j := uint32(r.next); j < g; j++ {
		if g-j <= cfg.tolerance {
			kn, err := keyNonce(suite, cur, j)
			if err != nil {
				return fail(err)
			}
			skipped = append(skipped, kn)
		}
		next, err := advance(suite, cur, j)
		if err != nil {
			return fail(err)
		}
		if owned {
			cur.Clear()
		}
		cur, owned = next, true
	}
	kn, err := keyNonce(suite, cur, g)
	if err != nil {
		return fail(err)
	}
	var next secret.Secret
	if g < math.MaxUint32 {
		if next, err = advance(suite, cur, g); err != nil {
			kn.Clear()
			return fail(err)
		}
	}
	if owned {
		cur.Clear()
	}
	// Commit: replace the secret, add the skipped keys, and delete kept
	// keys that are now more than the tolerance below g.
	r.secret.Clear()
	r.secret = next
	r.next = uint64(g) + 1
	r.kept = append(r.kept, skipped...)
	drop := 0
	for drop < len(r.kept) && uint64(g)-uint64(r.kept[drop].Generation) > uint64(cfg.tolerance) {
		r.kept[drop].Clear()
		drop++
	}
	r.kept = slices.Delete(r.kept, 0, drop)
	return kn, nil
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

// advance derives ratchet_secret_[N]_[j+1] =
// DeriveTreeSecret(ratchet_secret_[N]_[j], "secret", j, KDF.Nh) (§9.1).
func advance(suite *ciphersuite.Suite, s secret.Secret, j uint32) (secret.Secret, error) {
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
	r.kept = nil
}
