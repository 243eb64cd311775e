package group

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/mlsengine/mlsengine/storage"
	"runtime"
	"slices"
	"sync"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/keyschedule"
	"github.com/mlsengine/mlsengine/mls/ratchettree"
	"github.com/mlsengine/mlsengine/mls/treekem"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/welcome"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// signGroupInfo builds and signs, as this member, the GroupInfo of an
// epoch (§12.4.3): its context and confirmation tag, and optionally the
// ratchet_tree (§12.4.3.3) and external_pub (§12.4.3.2) extensions.
func (g *Group) signGroupInfo(ctx *wire.GroupContext, confTag []byte, tree *ratchettree.Tree, withTree bool, externalPub []byte) (*wire.GroupInfo, error) {
	exts := []wire.Extension{}
	if withTree {
		exts = append(exts, wire.NewExtension(wire.ExtensionTypeRatchetTree, tree))
	}
	if externalPub != nil {
		exts = append(exts, wire.ExternalPubExtension(externalPub))
	}
	gi := &wire.GroupInfo{
		GroupContext:    cloneContext(ctx),
		Extensions:      exts,
		ConfirmationTag: slices.Clone(confTag),
		Signer:          uint32(g.own),
	}
	sig, err := g.suite.SignWithLabel(g.signer, "GroupInfoTBS", gi.TBS())
	if err != nil {
		return nil, err
	}
	gi.Signature = sig
	return gi, nil
}

// buildWelcome builds the Welcome for the members a commit adds
// (§12.4.3.1): the GroupInfo of the new epoch, signed by the committer and
// encrypted under the welcome key, and for each new member its
// GroupSecrets (joiner_secret, the path secret of its lowest common
// ancestor with the committer, the PSK ids) encrypted to its init key.
func (g *Group) buildWelcome(sc *StagedCommit, tree *ratchettree.Tree, ks *epochKeys, cr *treekem.CreateResult) (*wire.MLSMessage, error) {
	gi, err := g.signGroupInfo(&sc.ctx, sc.confTag, tree, g.cfg.RatchetTreeExtension, nil)
	if err != nil {
		return nil, err
	}
	giBytes, err := codec.Marshal(gi)
	if err != nil {
		return nil, err
	}
	ws, err := ks.member.WelcomeSecret()
	if err != nil {
		return nil, err
	}
	defer ws.Clear()
	key, nonce, err := ws.KeyNonce()
	if err != nil {
		return nil, err
	}
	defer key.Clear()
	defer nonce.Clear()
	encGI, err := g.suite.Seal(key.Bytes(), nonce.Bytes(), nil, giBytes)
	if err != nil {
		return nil, err
	}
	joiner := ks.joiner.Secret()
	defer joiner.Clear()
	psks := sc.res.psks
	if psks == nil {
		psks = []wire.PreSharedKeyID{}
	}
	added := sc.res.added
	out := make([]wire.EncryptedGroupSecrets, len(added))
	err = parallel(len(added), func(i int) error {
		a := added[i]
		gs := wire.GroupSecrets{JoinerSecret: joiner, PSKs: psks}
		if cr != nil {
			ps, err := cr.PathSecret(a.leaf)
			if err != nil {
				return err
			}
			defer ps.Clear()
			gs.PathSecret = &wire.PathSecret{PathSecret: ps}
		}
		pt, err := codec.Marshal(&gs)
		if err != nil {
			return err
		}
		defer clear(pt)
		kem, ct, err := g.suite.EncryptWithLabel(a.kp.InitKey, "Welcome", encGI, pt)
		if err != nil {
			return fmt.Errorf("%w: encrypting to new member %d: %w", ErrInvalidKeyPackage, a.leaf, err)
		}
		out[i] = wire.EncryptedGroupSecrets{
			NewMember:             g.suite.MakeKeyPackageRef(a.kp.Bytes()),
			EncryptedGroupSecrets: wire.HPKECiphertext{KEMOutput: kem, Ciphertext: ct},
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return wire.WrapWelcome(&wire.Welcome{CipherSuite: uint16(g.suite.ID()), Secrets: out, EncryptedGroupInfo: encGI}), nil
}

// parallel runs f(0..n-1) on the available cores and returns the first
// error by index.
func parallel(n int, f func(i int) error) error {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := range n {
			if err := f(i); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				errs[i] = f(i)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// JoinOptions are the optional inputs of Join.
type JoinOptions struct {
	// RatchetTree is the encoded ratchet tree (the body of a ratchet_tree
	// extension, §12.4.3.3), for a Welcome whose GroupInfo does not carry
	// it. Its tree hash is checked against the GroupInfo.
	RatchetTree []byte
	// PSKs resolves the PSKs the Welcome names, before Config.PSKs: the
	// resumption PSK of the old group of a ReInit or branch (see
	// Group.PSKResolver).
	PSKs PSKResolver
	// Predecessor, if set, is this member's state of the group the new one
	// reinitializes or branches from: the Welcome's reinit or branch PSK
	// must name it, and the new group must match it (§11.2, §11.3).
	Predecessor *Group
}

// Join joins a group from a Welcome with one of the member's key packages
// (§12.4.3.1): it decrypts the GroupSecrets, derives the epoch's secrets
// with the named PSKs, decrypts and verifies the GroupInfo, builds and
// validates the ratchet tree (from the ratchet_tree extension or
// opts.RatchetTree), finds the member's leaf, and sets the private keys of
// its path from the path secret. The key package's private keys are then
// reported deleted (Changes) unless it is a last-resort key package.
//
// The caller must check that the group id is not one of its groups'.
func Join(cfg *Config, w *wire.Welcome, kpb *KeyPackageBundle, opts *JoinOptions) (*Group, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	if opts == nil {
		opts = &JoinOptions{}
	}
	if w == nil || kpb == nil || kpb.InitKey == nil || kpb.EncryptionKey == nil || kpb.SigningKey == nil {
		return nil, fmt.Errorf("%w: nil welcome, key package or key", ErrInvalidArgument)
	}
	suite := kpb.suite
	var pred PSKResolver
	if opts.Predecessor != nil {
		pred = opts.Predecessor.PSKResolver()
	}
	psks := &trackingResolver{resolve: chainResolvers(opts.PSKs, pred, cfg.PSKs)}
	defer psks.clear()
	var tree *ratchettree.Tree
	var treeErr error
	signer := func(gi *wire.GroupInfo) ([]byte, error) {
		tree, treeErr = joinTree(suite, gi, opts.RatchetTree)
		if treeErr != nil {
			return nil, treeErr
		}
		k := tree.SignatureKey(treemath.LeafIndex(gi.Signer))
		if k == nil {
			treeErr = fmt.Errorf("%w: signer leaf %d is blank", ErrInvalidWelcome, gi.Signer)
			return nil, treeErr
		}
		return k, nil
	}
	j, err := welcome.Open(w, kpb.KeyPackage, kpb.InitKey, psks.get, signer)
	if err != nil {
		if treeErr != nil {
			return nil, treeErr
		}
		if errors.Is(err, welcome.ErrUnknownPSK) {
			return nil, fmt.Errorf("%w: %w: %w", ErrInvalidWelcome, ErrUnknownPSK, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidWelcome, mapErr(err))
	}
	defer j.PathSecret.Clear()
	fail := func(err error) (*Group, error) {
		j.Epoch.Clear()
		return nil, err
	}
	gi := j.GroupInfo

	// §12.4.3.1: verify the integrity of the ratchet tree.
	if err := tree.CheckTreeHash(gi.GroupContext.TreeHash); err != nil {
		return fail(fmt.Errorf("%w: %w", ErrInvalidTree, err))
	}
	err = tree.Validate(&ratchettree.ValidationOptions{
		GroupID:                gi.GroupContext.GroupID,
		Now:                    cfg.now(),
		MaxLifetime:            cfg.MaxLeafLifetime,
		GroupContextExtensions: gi.GroupContext.Extensions,
		ValidateCredential:     cfg.ValidateCredential,
	})
	if err != nil {
		return fail(fmt.Errorf("%w: %w", ErrInvalidTree, mapErr(err)))
	}
	if err := checkGroupContextExtensions(gi.GroupContext.Extensions); err != nil {
		return fail(fmt.Errorf("%w: %w", ErrInvalidWelcome, err))
	}

	// §12.4.3.1: find our leaf and set the private keys of our path.
	leaf, ok := tree.FindLeaf(&kpb.KeyPackage.LeafNode)
	if !ok {
		return fail(fmt.Errorf("%w: the key package's leaf is not in the tree", ErrInvalidWelcome))
	}
	priv, err := treekem.NewJoinerState(tree, leaf, kpb.EncryptionKey, treemath.LeafIndex(gi.Signer), j.PathSecret)
	if err != nil {
		return fail(fmt.Errorf("%w: path secret: %w", ErrInvalidWelcome, err))
	}

	// §12.4.3.1: reinit and branch PSKs.
	if err := checkResumptionJoin(gi, j.PSKs, opts.Predecessor, tree); err != nil {
		return fail(err)
	}

	g := newGroup(cfg, suite, kpb.SigningKey)
	g.ctx = cloneContext(&gi.GroupContext)
	g.tree = tree
	g.confTag = slices.Clone(gi.ConfirmationTag)
	if g.interim, err = keyschedule.InterimTranscriptHash(suite, g.ctx.ConfirmedTranscriptHash, g.confTag); err != nil {
		return fail(err)
	}
	if err := g.installEpoch(j.Epoch, priv); err != nil {
		return nil, err
	}

	// §10, draft-ietf-mls-extensions last_resort: a used key package dies.
	if !kpb.LastResort() {
		g.log.del(clientScope, storage.Public, kpb.recordName())
		g.log.del(clientScope, storage.KeyMaterial, kpb.recordName())
		kpb.InitKey = nil
	}
	return g, nil
}

// joinTree builds the tree a joiner uses: from the ratchet_tree extension
// of the GroupInfo, else from the tree given out of band (§12.4.3.3).
func joinTree(suite *ciphersuite.Suite, gi *wire.GroupInfo, outOfBand []byte) (*ratchettree.Tree, error) {
	data := outOfBand
	if ext := wire.FindExtension(gi.Extensions, wire.ExtensionTypeRatchetTree); ext != nil {
		data = ext.ExtensionData
	}
	if data == nil {
		return nil, fmt.Errorf("%w: no ratchet tree in the GroupInfo and none given", ErrInvalidTree)
	}
	t, err := ratchettree.Decode(suite, data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidTree, err)
	}
	return t, nil
}

// checkResumptionJoin applies the §12.4.3.1 rules for a Welcome that uses a
// resumption PSK of usage reinit or branch: only one such PSK, epoch 1,
// and, given the old group, the new group must match the ReInit (§11.2) or
// be a branch of it (§11.3).
func checkResumptionJoin(gi *wire.GroupInfo, psks []wire.PreSharedKeyID, old *Group, tree *ratchettree.Tree) error {
	var special *wire.PreSharedKeyID
	for i := range psks {
		p := &psks[i]
		if p.PSKType != wire.PSKTypeResumption || p.Usage == wire.ResumptionPSKUsageApplication {
			continue
		}
		if special != nil {
			return fmt.Errorf("%w: more than one reinit or branch PSK", ErrInvalidWelcome)
		}
		special = p
	}
	if special == nil {
		if old != nil {
			return fmt.Errorf("%w: no reinit or branch PSK names the predecessor", ErrInvalidWelcome)
		}
		return nil
	}
	if gi.GroupContext.Epoch != 1 {
		return fmt.Errorf("%w: %v PSK in a Welcome to epoch %d", ErrInvalidWelcome, special.Usage, gi.GroupContext.Epoch)
	}
	if old == nil {
		return nil
	}
	if !bytes.Equal(special.PSKGroupID, old.ctx.GroupID) || special.PSKEpoch != old.ctx.Epoch {
		return fmt.Errorf("%w: the %v PSK does not name the predecessor's current epoch", ErrInvalidWelcome, special.Usage)
	}
	gc := &gi.GroupContext
	switch special.Usage {
	case wire.ResumptionPSKUsageReInit:
		ri := old.reinit
		if old.status != StatusReInit || ri == nil {
			return fmt.Errorf("%w: the predecessor's last commit has no ReInit", ErrInvalidWelcome)
		}
		if !bytes.Equal(ri.GroupID, gc.GroupID) || ri.Version != gc.Version || ri.CipherSuite != gc.CipherSuite || !sameExtensions(ri.Extensions, gc.Extensions) {
			return fmt.Errorf("%w: the group does not match the ReInit", ErrInvalidWelcome)
		}
		// All members of the old group must be in the new one.
		for _, ln := range old.tree.Members() {
			if _, ok := findClient(tree, ln); !ok {
				return fmt.Errorf("%w: a member of the old group is missing", ErrInvalidWelcome)
			}
		}
	case wire.ResumptionPSKUsageBranch:
		if gc.Version != old.ctx.Version || gc.CipherSuite != old.ctx.CipherSuite {
			return fmt.Errorf("%w: the branch changes version or cipher suite", ErrInvalidWelcome)
		}
		for _, ln := range tree.Members() {
			if _, ok := findClient(old.tree, ln); !ok {
				return fmt.Errorf("%w: a member of the branch is not in the old group", ErrInvalidWelcome)
			}
		}
	default:
		return fmt.Errorf("%w: resumption PSK usage %v", ErrInvalidWelcome, special.Usage)
	}
	return nil
}

// findClient finds a leaf of t that represents the same client as ln
// (§11.2, §11.3: the same credential).
func findClient(t *ratchettree.Tree, ln *wire.LeafNode) (treemath.LeafIndex, bool) {
	for l, o := range t.Members() {
		if sameClient(o, ln) {
			return l, true
		}
	}
	return 0, false
}

func sameExtensions(a, b []wire.Extension) bool {
	return slices.EqualFunc(a, b, func(x, y wire.Extension) bool {
		return x.ExtensionType == y.ExtensionType && bytes.Equal(x.ExtensionData, y.ExtensionData)
	})
}
