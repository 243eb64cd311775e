package treekem

import (
	"bytes"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
)

// The §7.4 derivations. Path secrets are held as raw slices inside this
// package and cleared with clear() as soon as they are no longer needed;
// what leaves the package is wrapped in secret.Secret.

// nextPathSecret is path_secret[n+1] = DeriveSecret(path_secret[n], "path")
// (§7.4); applied to the last path secret it gives the commit_secret
// (§12.4.1).
func nextPathSecret(suite *ciphersuite.Suite, pathSecret []byte) []byte {
	return suite.DeriveSecret(pathSecret, "path")
}

// pathSecretChain returns n path secrets starting with first (which it
// copies) and, derived one step past the last, the commit secret.
func pathSecretChain(suite *ciphersuite.Suite, first []byte, n int) (chain [][]byte, commit []byte) {
	chain = make([][]byte, n)
	cur := bytes.Clone(first)
	for i := range n {
		chain[i] = cur
		cur = nextPathSecret(suite, cur)
	}
	return chain, cur
}

// nodeKey derives a node's key pair from its path secret (§7.4):
//
//	node_secret = DeriveSecret(path_secret, "node")
//	node_priv, node_pub = KEM.DeriveKeyPair(node_secret)
func nodeKey(suite *ciphersuite.Suite, pathSecret []byte) (*ciphersuite.HPKEPrivateKey, error) {
	nodeSecret := suite.DeriveSecret(pathSecret, "node")
	defer clear(nodeSecret)
	k, err := suite.DeriveKeyPair(nodeSecret)
	if err != nil {
		return nil, fmt.Errorf("treekem: deriving a node key pair: %w", err)
	}
	return k, nil
}

// deriveNodeKeys derives the key pair of every path secret, spread over
// the available cores: the derivations are independent, and each costs a
// scalar multiplication.
func deriveNodeKeys(suite *ciphersuite.Suite, pathSecrets [][]byte) ([]*ciphersuite.HPKEPrivateKey, error) {
	keys := make([]*ciphersuite.HPKEPrivateKey, len(pathSecrets))
	err := parallelFor(len(pathSecrets), func(i int) error {
		k, err := nodeKey(suite, pathSecrets[i])
		keys[i] = k
		return err
	})
	if err != nil {
		return nil, err
	}
	return keys, nil
}

// equalPublicKey reports whether k's public key is pub. Public keys are not
// secret, so the comparison need not be constant-time.
func equalPublicKey(k *ciphersuite.HPKEPrivateKey, pub []byte) bool {
	return k != nil && bytes.Equal(k.PublicKey(), pub)
}

// minParallelJobs is the smallest number of jobs worth spreading over
// goroutines. Every job here is a public-key operation of 25 µs or more,
// against about 1 µs to start a goroutine, so two jobs already pay.
const minParallelJobs = 2

// parallelFor calls f(0), ..., f(n-1), on up to GOMAXPROCS goroutines, and
// returns the error of the lowest index that failed. Once a job fails, jobs
// not yet started are skipped.
func parallelFor(n int, f func(i int) error) error {
	workers := min(runtime.GOMAXPROCS(0), n)
	if n < minParallelJobs || workers < 2 {
		for i := range n {
			if err := f(i); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, n)
	var next atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if errs[i] = f(i); errs[i] != nil {
					failed.Store(true)
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
