package ratchettree

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// ValidationOptions carries the group parameters and policies that leaf
// node validation (§7.3) and tree validation (§12.4.3.1) check against. The
// zero value checks signatures (with an empty group_id), keys, the leaves'
// own capabilities and the uniqueness of keys, and nothing that needs the
// group's context.
type ValidationOptions struct {
	// GroupID is the group_id that leaves of source update and commit sign
	// (§7.2).
	GroupID []byte
	// Now, if not zero, is the time against which the lifetime of leaves
	// of source key_package is checked (§7.3). The check is only
	// RECOMMENDED for received leaves; leave Now zero to skip it.
	Now time.Time
	// MaxLifetime, if positive, is the longest total lifetime (not_after
	// - not_before) accepted for a leaf of source key_package (§7.2:
	// applications MUST define one).
	MaxLifetime time.Duration
	// RequiredCapabilities, if set, lists what every leaf must support
	// (§11.1). If nil, the required_capabilities extension of
	// GroupContextExtensions is used, if any.
	RequiredCapabilities *wire.RequiredCapabilities
	// GroupContextExtensions are the group's GroupContext extensions:
	// every leaf must list each non-default one in its capabilities (§13).
	GroupContextExtensions []wire.Extension
	// ValidateCredential, if set, validates a leaf's credential with the
	// Authentication Service (§5.3.1): for example, that an X.509
	// end-entity certificate holds signatureKey. An error rejects the leaf
	// with ErrCredential. It may be called concurrently.
	ValidateCredential func(cred *wire.Credential, signatureKey []byte) error
	// Source, if not zero, is the leaf_node_source a single leaf must have
	// (§7.3: key_package in a KeyPackage, update in an Update, commit in an
	// UpdatePath). Tree validation ignores it.
	Source wire.LeafNodeSource
	// Parallelism is the number of goroutines Validate verifies leaves
	// with; 0 means runtime.GOMAXPROCS(0).
	Parallelism int
}

// The default proposal and extension types of §7.2, which capabilities
// must not list and which every client supports.
func defaultProposal(t wire.ProposalType) bool   { return t >= 1 && t <= 7 }
func defaultExtension(t wire.ExtensionType) bool { return t >= 1 && t <= 5 }

// groupParams is what a ValidationOptions asks of every leaf, resolved once.
type groupParams struct {
	required *wire.RequiredCapabilities
	gcExts   []wire.ExtensionType
}

func resolveParams(opts *ValidationOptions) (groupParams, error) {
	var g groupParams
	g.required = opts.RequiredCapabilities
	for _, e := range opts.GroupContextExtensions {
		if !defaultExtension(e.ExtensionType) {
			g.gcExts = append(g.gcExts, e.ExtensionType)
		}
		if e.ExtensionType == wire.ExtensionTypeRequiredCapabilities && g.required == nil {
			rc, err := e.RequiredCapabilities()
			if err != nil {
				return g, fmt.Errorf("%w: required_capabilities extension: %w", ErrCapabilities, err)
			}
			g.required = rc
		}
	}
	return g, nil
}

// ValidateLeafNode checks the parts of §7.3 that concern one LeafNode alone,
// to be placed at leaf l: its keys are well formed for the suite, its
// source is opts.Source (if set), its capabilities list the suite, version
// mls10, its credential type, every non-default extension it carries, what
// the group requires (RequiredCapabilities) and every non-default
// GroupContext extension; its lifetime covers opts.Now (if set) and is no
// longer than opts.MaxLifetime (if set); opts.ValidateCredential accepts its
// credential; and its signature verifies over LeafNodeTBS with
// opts.GroupID and l. A nil opts is the zero ValidationOptions.
//
// The checks that need the rest of the tree (unique keys, credential types
// supported across members) are in CheckNewLeaf and Validate.
func ValidateLeafNode(suite *ciphersuite.Suite, ln *wire.LeafNode, l treemath.LeafIndex, opts *ValidationOptions) error {
	if suite == nil || ln == nil {
		return fmt.Errorf("%w: nil suite or leaf node", ErrInvalidKey)
	}
	if opts == nil {
		opts = new(ValidationOptions)
	}
	g, err := resolveParams(opts)
	if err != nil {
		return err
	}
	if opts.Source != 0 && ln.LeafNodeSource != opts.Source {
		return fmt.Errorf("%w: %v, want %v", ErrLeafNodeSource, ln.LeafNodeSource, opts.Source)
	}
	c := leafChecker{suite: suite, opts: opts, g: &g}
	return c.check(ln.Bytes(), uint32(l), &ln.Credential)
}

// leafChecker validates encoded leaves for one set of options, reusing a
// buffer for the signed content. It is what ValidateLeafNode and Validate
// share; Validate runs one per goroutine.
type leafChecker struct {
	suite *ciphersuite.Suite
	opts  *ValidationOptions
	g     *groupParams
	buf   []byte

	// Scratch for the parent hashes Validate checks alongside leaves.
	h   hasher
	res []treemath.NodeIndex
}

// check validates the encoded LeafNode enc at leaf l. cred is its decoded
// credential if the caller has it, for opts.ValidateCredential.
func (c *leafChecker) check(enc []byte, l uint32, cred *wire.Credential) error {
	f, ok := parseLeaf(enc)
	if !ok {
		return fmt.Errorf("%w: malformed leaf node", codec.ErrMalformed)
	}
	if err := c.suite.ValidateHPKEPublicKey(f.encryptionKey); err != nil {
		return fmt.Errorf("%w: encryption key: %w", ErrInvalidKey, err)
	}
	if err := c.suite.ValidateSignaturePublicKey(f.signatureKey); err != nil {
		return fmt.Errorf("%w: signature key: %w", ErrInvalidKey, err)
	}
	if err := checkCapabilities(c.suite, &f, c.g); err != nil {
		return err
	}
	if f.source == wire.LeafNodeSourceKeyPackage {
		if err := checkLifetime(&f.lifetime, c.opts); err != nil {
			return err
		}
	}
	if v := c.opts.ValidateCredential; v != nil {
		if cred == nil {
			var err error
			if cred, err = wire.Unmarshal[wire.Credential](f.credential); err != nil {
				return fmt.Errorf("%w: %w", ErrCredential, err)
			}
		}
		if err := v(cred, f.signatureKey); err != nil {
			return fmt.Errorf("%w: %w", ErrCredential, err)
		}
	}
	// LeafNodeTBS is the LeafNode up to its signature, followed for the
	// update and commit sources by group_id and leaf_index (§7.2).
	tbs := append(c.buf[:0], enc[:f.tbsLen]...)
	if f.source == wire.LeafNodeSourceUpdate || f.source == wire.LeafNodeSourceCommit {
		tbs = appendVarBytes(tbs, c.opts.GroupID)
		tbs = appendUint32(tbs, l)
	}
	c.buf = tbs
	if err := c.suite.VerifyWithLabel(f.signatureKey, "LeafNodeTBS", tbs, f.signature); err != nil {
		return fmt.Errorf("%w: %w", ErrBadLeafSignature, err)
	}
	return nil
}

// checkCapabilities applies the capability rules of §7.3, §12.1.7 and
// §13 to one leaf. §7.3 does not ask a leaf to list the group's protocol
// version or cipher suite, and deployed implementations send leaves that
// do not: such leaves are accepted (the leaves this package's callers make
// list both).
func checkCapabilities(_ *ciphersuite.Suite, f *leafFields, g *groupParams) error {
	if !has16(f.capCredentials, uint16(f.credentialType)) {
		return fmt.Errorf("%w: own credential type %v not listed", ErrCapabilities, f.credentialType)
	}
	err := eachExtensionType(f.extensions, func(t wire.ExtensionType) error {
		if !defaultExtension(t) && !has16(f.extTypes, uint16(t)) {
			return fmt.Errorf("%w: own extension %v not listed", ErrCapabilities, t)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, t := range g.gcExts {
		if !has16(f.extTypes, uint16(t)) {
			return fmt.Errorf("%w: group context extension %v not listed", ErrCapabilities, t)
		}
	}
	if rc := g.required; rc != nil {
		for _, t := range rc.ExtensionTypes {
			if !defaultExtension(t) && !has16(f.extTypes, uint16(t)) {
				return fmt.Errorf("%w: required extension %v not listed", ErrCapabilities, t)
			}
		}
		for _, t := range rc.ProposalTypes {
			if !defaultProposal(t) && !has16(f.proposals, uint16(t)) {
				return fmt.Errorf("%w: required proposal %v not listed", ErrCapabilities, t)
			}
		}
		for _, t := range rc.CredentialTypes {
			if !has16(f.capCredentials, uint16(t)) {
				return fmt.Errorf("%w: required credential type %v not listed", ErrCapabilities, t)
			}
		}
	}
	return nil
}

func checkLifetime(lt *wire.Lifetime, opts *ValidationOptions) error {
	if lt.NotAfter < lt.NotBefore {
		return fmt.Errorf("%w: not_after before not_before", ErrLifetime)
	}
	if opts.MaxLifetime > 0 && lt.NotAfter-lt.NotBefore > uint64(opts.MaxLifetime/time.Second) {
		return fmt.Errorf("%w: longer than %v", ErrLifetime, opts.MaxLifetime)
	}
	if !opts.Now.IsZero() {
		now := opts.Now.Unix()
		if now < 0 || uint64(now) < lt.NotBefore || uint64(now) > lt.NotAfter {
			return fmt.Errorf("%w: %v is outside [%d, %d]", ErrLifetime, opts.Now.UTC(), lt.NotBefore, lt.NotAfter)
		}
	}
	return nil
}

// CheckTreeHash compares the tree hash of the tree with want, the
// tree_hash of the GroupInfo or GroupContext (§12.4.3.1, §12.4.3.3); a
// difference matches ErrTreeHashMismatch and ErrInvalidTree.
func (t *Tree) CheckTreeHash(want []byte) error {
	root := rootOf(t.n)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rehashAll()
	if !bytes.Equal(t.cached(root), want) {
		return invalidf(ErrTreeHashMismatch, "tree hash differs from the expected one")
	}
	return nil
}

// Validate checks the integrity of the tree as a joiner must (§12.4.3.1),
// except the tree hash, which the caller compares with CheckTreeHash:
//
//   - every unmerged_leaves list is sorted, names non-blank leaves below its
//     node, and every non-blank node in between lists the leaf too;
//   - no encryption key appears in two nodes and no signature key in two
//     leaves (§7.3), using hash sets, in O(N);
//   - every non-blank parent node is parent-hash valid (§7.9.2) and has a
//     well-formed encryption key;
//   - every leaf passes ValidateLeafNode at its index;
//   - every leaf supports the credential types of all members (§7.3).
//
// The per-node checks (parent hashes, leaves with their signatures) run on
// opts.Parallelism goroutines. The first failure is returned, in the order
// above and by node index within the per-node checks, whatever the
// parallelism; it matches ErrInvalidTree and the sentinel of its kind. A
// nil opts is the zero ValidationOptions.
func (t *Tree) Validate(opts *ValidationOptions) error {
	if opts == nil {
		opts = new(ValidationOptions)
	}
	g, err := resolveParams(opts)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidTree, err)
	}
	if err := t.checkUnmergedPlacement(); err != nil {
		return err
	}
	if err := t.checkUnmergedConsistency(); err != nil {
		return err
	}
	t.mu.Lock()
	t.rehashAll() // the workers read the hash cache, and must not write it
	err = t.duplicateKeys()
	t.mu.Unlock()
	if err != nil {
		return err
	}
	if err := t.validateNodes(opts, &g); err != nil {
		return err
	}
	return t.checkCredentialTypes()
}

// checkUnmergedConsistency checks that every non-blank parent node between
// an unmerged leaf and the node listing it lists the leaf too
// (§12.4.3.1).
func (t *Tree) checkUnmergedConsistency() error {
	for k, p := range t.parents {
		if p == nil {
			continue
		}
		x := uint32(2*k + 1)
		for _, l := range p.UnmergedLeaves {
			for y := parentOf(2 * l); y != x; y = parentOf(y) {
				q := t.parents[y/2]
				if q == nil {
					continue
				}
				if _, found := slices.BinarySearch(q.UnmergedLeaves, l); !found {
					return invalidf(ErrUnmergedLeaf, "leaf %d is unmerged at node %d but not at node %d below it", l, x, y)
				}
			}
		}
	}
	return nil
}

// nodeError is a validation failure at a node, for picking the first one.
type nodeError struct {
	x   uint32
	err error
}

// validateNodes validates every leaf, and the parent hash and key of every
// parent node, on
// opts.Parallelism goroutines, and returns the failure at the lowest node
// index. Workers take chunks in increasing order and skip chunks above a
// failure already found, so the result does not depend on scheduling.
func (t *Tree) validateNodes(opts *ValidationOptions, g *groupParams) error {
	const chunk = 128 // nodes per work item
	w := uint64(width(t.n))
	chunks := (w + chunk - 1) / chunk
	workers := opts.Parallelism
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, int(chunks))
	var next atomic.Uint64
	var firstBad atomic.Uint64
	firstBad.Store(uint64(noNode))
	errs := make([]nodeError, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			lc := leafChecker{suite: t.suite, opts: opts, g: g, h: hasher{nh: t.nh}}
			errs[i].x = noNode
			for {
				c := next.Add(1) - 1
				if c >= chunks || c*chunk > firstBad.Load() {
					return
				}
				for x64 := c * chunk; x64 < min(w, (c+1)*chunk); x64++ {
					x := uint32(x64)
					if !t.filled.get(x) {
						continue
					}
					if err := t.validateNode(&lc, x); err != nil {
						if x < errs[i].x {
							errs[i] = nodeError{x, err}
						}
						for {
							cur := firstBad.Load()
							if x64 >= cur || firstBad.CompareAndSwap(cur, x64) {
								break
							}
						}
						break
					}
				}
			}
		})
	}
	wg.Wait()
	first := nodeError{x: noNode}
	for _, e := range errs {
		if e.x < first.x {
			first = e
		}
	}
	return first.err
}

// validateNode validates the non-blank node x: a leaf fully, a parent's
// parent hash and encryption key.
func (t *Tree) validateNode(c *leafChecker, x uint32) error {
	if x%2 == 1 {
		if err := t.parentHashValid(&c.h, x, &c.res); err != nil {
			return err
		}
		if err := t.suite.ValidateHPKEPublicKey(t.parents[x/2].EncryptionKey); err != nil {
			return invalidf(ErrInvalidKey, "parent node %d: %w", x, err)
		}
		return nil
	}
	if err := c.check(t.leaves[x/2], x/2, nil); err != nil {
		return fmt.Errorf("%w: leaf %d: %w", ErrInvalidTree, x/2, err)
	}
	return nil
}

// checkCredentialTypes checks that every member supports every credential
// type in use (§7.3). It reads the encodings in place, in O(N).
func (t *Tree) checkCredentialTypes() error {
	var used []wire.CredentialType
	var usedBy []uint32
	for l, enc := range t.leaves {
		if enc == nil {
			continue
		}
		v, ok := viewLeaf(enc)
		if !ok {
			return invalidf(nil, "leaf %d does not parse", l) // unreachable
		}
		if !slices.Contains(used, v.credentialType) {
			used = append(used, v.credentialType)
			usedBy = append(usedBy, uint32(l))
		}
	}
	for l, enc := range t.leaves {
		if enc == nil {
			continue
		}
		v, _ := viewLeaf(enc)
		for i, ct := range used {
			if !supportsCredential(v.capCredentials, ct) {
				return invalidf(ErrCapabilities, "leaf %d does not support credential type %v of leaf %d", l, ct, usedBy[i])
			}
		}
	}
	return nil
}

// CheckNewLeaf checks a LeafNode about to enter the tree at leaf l against
// the rest of the tree (§7.3): its encryption key is in no node, including
// the leaf it replaces (an Update or UpdatePath leaf needs a new key), its
// signature key is in no other leaf, its credential type is supported by
// every other member, and it supports every credential type the other
// members use. For an Add, l may be any blank leaf or LeafCount(): nothing
// is replaced. Combine it with ValidateLeafNode. It costs O(1) after the
// first call on a tree, which builds an index in O(N).
func (t *Tree) CheckNewLeaf(l treemath.LeafIndex, ln *wire.LeafNode) error {
	if ln == nil {
		return errors.New("ratchettree: nil leaf node")
	}
	replaced := noNode
	if uint32(l) < t.n && t.leaves[l] != nil {
		replaced = uint32(l)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var buf [2]uint32
	if xs := t.findEnc(buf[:0], ln.EncryptionKey, noNode); len(xs) > 0 {
		return fmt.Errorf("%w: already at node %d", ErrDuplicateEncryptionKey, slices.Min(xs))
	}
	if ls := t.findSig(buf[:0], ln.SignatureKey, replaced); len(ls) > 0 {
		return fmt.Errorf("%w: already at leaf %d", ErrDuplicateSignatureKey, slices.Min(ls))
	}
	return t.index().checkCredentials(t, replaced, ln)
}
