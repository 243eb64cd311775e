package group

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/mlsengine/mlsengine/mls/persist"
	"github.com/mlsengine/mlsengine/storage"
	"slices"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/ratchettree"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// KeyPackageBundle is a KeyPackage (§10) with the private keys it was made
// with: the init key a Welcome is encrypted to, the leaf's encryption key
// and the signing key of its credential. Its Records separate the public
// KeyPackage from the private keys; joining a group with it reports the
// private keys as deleted unless the KeyPackage is a last-resort one.
type KeyPackageBundle struct {
	// KeyPackage is the public KeyPackage to publish.
	KeyPackage *wire.KeyPackage
	// InitKey decrypts the GroupSecrets of a Welcome (§12.4.3.1).
	InitKey *ciphersuite.HPKEPrivateKey
	// EncryptionKey is the private key of the leaf node's encryption_key.
	EncryptionKey *ciphersuite.HPKEPrivateKey
	// SigningKey is the private key of the leaf node's signature_key.
	SigningKey *ciphersuite.SigningKey

	suite *ciphersuite.Suite
	ref   []byte
}

// KeyPackageOptions are the optional inputs of NewKeyPackage.
type KeyPackageOptions struct {
	// LastResort adds the last_resort extension (type 0x000A), which lets
	// the KeyPackage serve many Welcomes.
	LastResort bool
	// Extensions are further KeyPackage extensions. Non-default ones must
	// be listed in the identity's capabilities.
	Extensions []wire.Extension
}

// NewKeyPackage builds and signs a KeyPackage for id in suite (§10) with
// fresh init and encryption keys drawn from cfg.Rand and a lifetime of
// cfg.KeyPackageLifetime from cfg.Now (not_before an hour earlier, for
// clock skew).
func NewKeyPackage(suiteID ciphersuite.ID, id *Identity, cfg *Config, opts *KeyPackageOptions) (*KeyPackageBundle, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	if opts == nil {
		opts = &KeyPackageOptions{}
	}
	suite, err := ciphersuite.Lookup(suiteID)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	if err := id.check(suite); err != nil {
		return nil, err
	}
	initKey, err := suite.GenerateKeyPair(cfg.rand())
	if err != nil {
		return nil, err
	}
	encKey, err := suite.GenerateKeyPair(cfg.rand())
	if err != nil {
		return nil, err
	}
	now := cfg.creationTime()
	exts := slices.Clone(opts.Extensions)
	if opts.LastResort && wire.FindExtension(exts, ExtensionTypeLastResort) == nil {
		exts = append(exts, wire.Extension{ExtensionType: ExtensionTypeLastResort, ExtensionData: []byte{}})
	}
	if exts == nil {
		exts = []wire.Extension{}
	}
	if err := wire.CheckExtensions(exts); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	caps := id.capabilities(suiteID)
	for _, e := range exts {
		if !isDefaultExtension(e.ExtensionType) && !slices.Contains(caps.Extensions, e.ExtensionType) {
			caps.Extensions = append(caps.Extensions, e.ExtensionType)
		}
	}
	ln := wire.LeafNode{
		EncryptionKey:  encKey.PublicKey(),
		SignatureKey:   id.SigningKey.PublicKey(),
		Credential:     id.Credential,
		Capabilities:   caps,
		LeafNodeSource: wire.LeafNodeSourceKeyPackage,
		Lifetime: &wire.Lifetime{
			NotBefore: uint64(max(now.Add(-keyPackageClockSkew).Unix(), 0)),
			NotAfter:  uint64(max(now.Add(cfg.keyPackageLifetime()).Unix(), 0)),
		},
		Extensions: leafExtensions(id),
	}
	if err := signLeafNode(suite, id.SigningKey, &ln, nil, 0); err != nil {
		return nil, err
	}
	kp := &wire.KeyPackage{
		Version:     wire.ProtocolVersionMLS10,
		CipherSuite: uint16(suiteID),
		InitKey:     initKey.PublicKey(),
		LeafNode:    ln,
		Extensions:  exts,
	}
	sig, err := suite.SignWithLabel(id.SigningKey, "KeyPackageTBS", kp.TBS())
	if err != nil {
		return nil, err
	}
	kp.Signature = sig
	b := &KeyPackageBundle{KeyPackage: kp, InitKey: initKey, EncryptionKey: encKey, SigningKey: id.SigningKey, suite: suite}
	if err := checkExtensionsListed(kp); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return b, nil
}

func leafExtensions(id *Identity) []wire.Extension {
	if id.Extensions == nil {
		return []wire.Extension{}
	}
	return slices.Clone(id.Extensions)
}

// signLeafNode signs ln over LeafNodeTBS (§7.2).
func signLeafNode(suite *ciphersuite.Suite, key *ciphersuite.SigningKey, ln *wire.LeafNode, groupID []byte, leaf uint32) error {
	ln.ClearRaw()
	ln.Signature = nil
	tbs := ln.TBS(groupID, leaf)
	if tbs == nil {
		return fmt.Errorf("%w: leaf node too large", ErrInvalidArgument)
	}
	sig, err := suite.SignWithLabel(key, "LeafNodeTBS", tbs)
	if err != nil {
		return err
	}
	ln.Signature = sig
	return nil
}

// NewKeyPackageBundle assembles a bundle from a KeyPackage and its private
// keys, for example ones generated elsewhere or read from storage. It checks
// that each private key belongs to the KeyPackage.
func NewKeyPackageBundle(kp *wire.KeyPackage, initKey, encryptionKey *ciphersuite.HPKEPrivateKey, signingKey *ciphersuite.SigningKey) (*KeyPackageBundle, error) {
	if kp == nil || initKey == nil || encryptionKey == nil || signingKey == nil {
		return nil, fmt.Errorf("%w: nil key package or key", ErrInvalidArgument)
	}
	suite, err := ciphersuite.Lookup(ciphersuite.ID(kp.CipherSuite))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	switch {
	case !bytes.Equal(initKey.PublicKey(), kp.InitKey):
		return nil, fmt.Errorf("%w: init key does not match the key package", ErrInvalidArgument)
	case !bytes.Equal(encryptionKey.PublicKey(), kp.LeafNode.EncryptionKey):
		return nil, fmt.Errorf("%w: encryption key does not match the key package", ErrInvalidArgument)
	case !bytes.Equal(signingKey.PublicKey(), kp.LeafNode.SignatureKey):
		return nil, fmt.Errorf("%w: signing key does not match the key package", ErrInvalidArgument)
	}
	return &KeyPackageBundle{KeyPackage: kp, InitKey: initKey, EncryptionKey: encryptionKey, SigningKey: signingKey, suite: suite}, nil
}

// Suite returns the KeyPackage's cipher suite.
func (b *KeyPackageBundle) Suite() *ciphersuite.Suite { return b.suite }

// Ref returns the KeyPackageRef (§5.2).
func (b *KeyPackageBundle) Ref() []byte {
	if b.ref == nil {
		b.ref = b.suite.MakeKeyPackageRef(b.KeyPackage.Bytes())
	}
	return slices.Clone(b.ref)
}

// LastResort reports whether the KeyPackage carries the last_resort
// extension.
func (b *KeyPackageBundle) LastResort() bool { return IsLastResort(b.KeyPackage) }

// IsLastResort reports whether kp carries the last_resort extension
// (type 0x000A, draft-ietf-mls-extensions).
func IsLastResort(kp *wire.KeyPackage) bool {
	return kp != nil && wire.FindExtension(kp.Extensions, ExtensionTypeLastResort) != nil
}

// recordName is the name of the bundle's records (public and key
// material) in the client scope.
func (b *KeyPackageBundle) recordName() string { return persist.KeyPackageName(b.Ref()) }

// Records returns the bundle's client-scope records: the KeyPackage
// (Public) and its init and encryption private keys (KeyMaterial). The
// signing key is the identity's and is not included. The caller owns the
// values and clears the key material once stored.
//
// The public record is the KeyPackage in its RFC 9420 encoding (§10); the
// key material record is an envelope of the two HPKE private keys in their
// RFC 9180 SerializePrivateKey form (persist.KeyPackageKeysValue).
func (b *KeyPackageBundle) Records() []storage.Record {
	ik, ek := b.InitKey.Bytes(), b.EncryptionKey.Bytes()
	keys := persist.KeyPackageKeysValue(ik, ek)
	ik.Clear()
	ek.Clear()
	return []storage.Record{
		{Key: storage.Key{Scope: storage.ClientScope(), Class: storage.Public, Name: b.recordName()}, Value: b.KeyPackage.Bytes()},
		{Key: storage.Key{Scope: storage.ClientScope(), Class: storage.KeyMaterial, Name: b.recordName()}, Value: keys},
	}
}

// RestoreKeyPackageBundle rebuilds a bundle from the values of its two
// records and the signing key. Records that do not decode, or whose keys
// do not match the KeyPackage, fail with an error matching
// ErrCorruptState.
func RestoreKeyPackageBundle(public, keyMaterial []byte, signingKey *ciphersuite.SigningKey) (*KeyPackageBundle, error) {
	if signingKey == nil {
		return nil, fmt.Errorf("%w: nil signing key", ErrInvalidArgument)
	}
	kp, err := wire.Unmarshal[wire.KeyPackage](public)
	if err != nil {
		return nil, fmt.Errorf("%w: key package: %w", ErrCorruptState, err)
	}
	suite, err := ciphersuite.Lookup(ciphersuite.ID(kp.CipherSuite))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptState, err)
	}
	ib, eb, err := persist.OpenKeyPackageKeys(keyMaterial)
	if err != nil {
		return nil, corrupt("key package keys", err)
	}
	defer ib.Clear()
	defer eb.Clear()
	ik, err := suite.ParseHPKEPrivateKey(ib.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%w: init key: %w", ErrCorruptState, err)
	}
	ek, err := suite.ParseHPKEPrivateKey(eb.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%w: encryption key: %w", ErrCorruptState, err)
	}
	b, err := NewKeyPackageBundle(kp, ik, ek, signingKey)
	if err != nil {
		// Keys that do not match the KeyPackage: the records do not
		// belong together, or signingKey is not the one they were made
		// with (the error also matches ErrInvalidArgument then).
		return nil, fmt.Errorf("%w: %w", ErrCorruptState, err)
	}
	return b, nil
}

// ValidateKeyPackage checks a received KeyPackage as §10.1 requires before
// it is used to add its client to a group of suite: version mls10 and
// the suite, the leaf node valid for source key_package (§7.3: keys,
// capabilities, lifetime against cfg.Now, credential with
// cfg.ValidateCredential, signature), the KeyPackage signature, an init key
// different from the encryption key, and its extensions listed in its
// capabilities. The group it joins checks its own requirements on top
// (required capabilities, GroupContext extensions). An expired or not yet
// valid KeyPackage matches ErrKeyPackageExpired.
func ValidateKeyPackage(kp *wire.KeyPackage, suiteID ciphersuite.ID, cfg *Config) error {
	suite, err := ciphersuite.Lookup(suiteID)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	if cfg == nil {
		cfg = &Config{}
	}
	return validateKeyPackage(suite, kp, cfg, nil)
}

// validateKeyPackage implements §10.1 for a group whose GroupContext
// extensions are gcExts.
func validateKeyPackage(suite *ciphersuite.Suite, kp *wire.KeyPackage, cfg *Config, gcExts []wire.Extension) error {
	if kp == nil {
		return fmt.Errorf("%w: nil", ErrInvalidKeyPackage)
	}
	if kp.Version != wire.ProtocolVersionMLS10 {
		return fmt.Errorf("%w: version %v", ErrInvalidKeyPackage, kp.Version)
	}
	if kp.CipherSuite != uint16(suite.ID()) {
		return fmt.Errorf("%w: cipher suite %#04x, group uses %v", ErrInvalidKeyPackage, kp.CipherSuite, suite.ID())
	}
	if err := suite.ValidateHPKEPublicKey(kp.InitKey); err != nil {
		return fmt.Errorf("%w: init_key: %w", ErrInvalidKeyPackage, err)
	}
	if bytes.Equal(kp.InitKey, kp.LeafNode.EncryptionKey) {
		return fmt.Errorf("%w: init_key equals the leaf's encryption_key", ErrInvalidKeyPackage)
	}
	err := ratchettree.ValidateLeafNode(suite, &kp.LeafNode, 0, &ratchettree.ValidationOptions{
		Now:                    cfg.now(),
		MaxLifetime:            cfg.MaxLeafLifetime,
		GroupContextExtensions: gcExts,
		ValidateCredential:     cfg.ValidateCredential,
		Source:                 wire.LeafNodeSourceKeyPackage,
	})
	if err != nil {
		if errors.Is(err, ratchettree.ErrLifetime) {
			return fmt.Errorf("%w: %w", ErrKeyPackageExpired, err)
		}
		return fmt.Errorf("%w: leaf node: %w", ErrInvalidKeyPackage, mapErr(err))
	}
	if err := suite.VerifyWithLabel(kp.LeafNode.SignatureKey, "KeyPackageTBS", kp.TBS(), kp.Signature); err != nil {
		return fmt.Errorf("%w: %w: %w", ErrInvalidKeyPackage, ErrBadSignature, err)
	}
	if err := checkExtensionsListed(kp); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidKeyPackage, err)
	}
	return nil
}

// checkExtensionsListed enforces §10: extensions in KeyPackage.extensions
// must be listed in the leaf's capabilities, default extensions and
// GREASE values excepted.
func checkExtensionsListed(kp *wire.KeyPackage) error {
	for _, e := range kp.Extensions {
		if isDefaultExtension(e.ExtensionType) || wire.IsGREASE(uint16(e.ExtensionType)) {
			continue
		}
		if !slices.Contains(kp.LeafNode.Capabilities.Extensions, e.ExtensionType) {
			return fmt.Errorf("%w: extension %v not in the leaf's capabilities", ErrUnsupported, e.ExtensionType)
		}
	}
	return nil
}

// isDefaultExtension reports whether t is an extension type RFC 9420
// defines, which members support without listing it (§7.2).
func isDefaultExtension(t wire.ExtensionType) bool {
	return t >= wire.ExtensionTypeApplicationID && t <= wire.ExtensionTypeExternalSenders
}

// isDefaultProposal reports whether t is a proposal type RFC 9420 defines.
func isDefaultProposal(t wire.ProposalType) bool {
	return t >= wire.ProposalTypeAdd && t <= wire.ProposalTypeGroupContextExtensions
}

// Clear drops the bundle's private keys (best effort, see package
// treekem: HPKE keys cannot be overwritten in Go).
func (b *KeyPackageBundle) Clear() {
	b.InitKey, b.EncryptionKey = nil, nil
}
