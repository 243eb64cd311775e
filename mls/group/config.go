package group

import (
	"crypto/rand"
	"fmt"
	"github.com/mlsengine/mlsengine/mls/persist"
	"io"
	"slices"
	"time"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/secrettree"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// Defaults applied to zero fields of Config.
const (
	// DefaultOutOfOrderTolerance is the default number of skipped
	// generations per sender ratchet whose keys are kept for late
	// messages.
	DefaultOutOfOrderTolerance = secrettree.DefaultOutOfOrderTolerance
	// DefaultMaxForwardDistance is the default number of generations a
	// message may skip ahead of its sender's ratchet.
	DefaultMaxForwardDistance = secrettree.DefaultMaxForwardDistance
	// DefaultKeyPackageLifetime is the default lifetime of new key
	// packages (§7.2: applications must bound it).
	DefaultKeyPackageLifetime = 90 * 24 * time.Hour
	// keyPackageClockSkew is how far before now a new key package's
	// not_before is set, to tolerate receivers whose clocks are behind.
	keyPackageClockSkew = time.Hour
)

// PSKResolver returns the pre-shared key a PreSharedKeyID names (§8.4),
// as a secret the caller owns, or an error matching ErrUnknownPSK when
// it does not have it. The group itself resolves the resumption PSKs of
// its own epochs; a resolver supplies external PSKs and the resumption
// PSKs of other groups (the old group of a ReInit or branch).
type PSKResolver func(id *wire.PreSharedKeyID) (secret.Secret, error)

// ExternalPSKs returns a PSKResolver over a fixed set of external PSKs,
// indexed by psk_id. It keeps the secrets it is given and hands out
// copies.
func ExternalPSKs(psks map[string]secret.Secret) PSKResolver {
	return func(id *wire.PreSharedKeyID) (secret.Secret, error) {
		if id.PSKType == wire.PSKTypeExternal {
			if s, ok := psks[string(id.PSKID)]; ok {
				return secret.Copy(s.Bytes()), nil
			}
		}
		return secret.Secret{}, ErrUnknownPSK
	}
}

// Config is a member's configuration of one group, given when the group is
// created or joined and kept with it. The zero Config is usable: zero
// fields take the defaults documented on them.
type Config struct {
	// MaxPastEpochs is how many past epochs keep their message secrets
	// (secret tree and sender_data_secret) so that late application
	// messages still decrypt (§15.3). 0 keeps none. Older epochs' secrets
	// are deleted; no other secret of a past epoch is kept.
	MaxPastEpochs int
	// NumberOfResumptionPSKs is how many resumption PSKs of past epochs
	// are kept in addition to the current epoch's (§8.6).
	NumberOfResumptionPSKs int
	// OutOfOrderTolerance is how many skipped generations of a sender
	// ratchet keep their keys for out-of-order messages (§9.1). 0 means
	// DefaultOutOfOrderTolerance; a negative value keeps none.
	OutOfOrderTolerance int
	// MaxForwardDistance is how many generations a message may skip ahead
	// of its sender's ratchet. 0 means DefaultMaxForwardDistance; a
	// negative value allows none.
	MaxForwardDistance int
	// PaddingBlock pads the plaintext of every PrivateMessage this member
	// sends to a multiple of this many bytes (§6.3.1, §15.1). 0 or 1 means
	// no padding.
	PaddingBlock int
	// EncryptHandshake sends proposals and commits as PrivateMessage; by
	// default they are PublicMessages. External commits and external
	// proposals are always PublicMessages (§6.2, §12.1.8).
	EncryptHandshake bool
	// RatchetTreeExtension puts the ratchet tree in the ratchet_tree
	// extension of Welcome and exported GroupInfo messages (§12.4.3.3);
	// otherwise joiners get the tree out of band.
	RatchetTreeExtension bool
	// RequiredCapabilities, set when creating a group, becomes its
	// required_capabilities GroupContext extension (§11.1).
	RequiredCapabilities *wire.RequiredCapabilities
	// ExternalSenders, set when creating a group, becomes its
	// external_senders GroupContext extension (§12.1.8.1).
	ExternalSenders []wire.ExternalSender
	// KeyPackageLifetime is the lifetime of new key packages; 0 means
	// DefaultKeyPackageLifetime.
	KeyPackageLifetime time.Duration
	// MaxLeafLifetime, if positive, rejects received leaves of source
	// key_package whose lifetime is longer (§7.2).
	MaxLeafLifetime time.Duration

	// The fields below are not persisted with the group: supply them again
	// when restoring it.

	// Rand is the source of randomness (keys, path secrets, PSK nonces,
	// reuse guards); crypto/rand.Reader if nil. HPKE encapsulation and
	// ECDSA signatures use the system CSPRNG regardless (package
	// ciphersuite).
	Rand io.Reader
	// Now is the clock lifetimes are checked against (§7.3); time.Now if
	// nil. A Now that returns the zero time disables the lifetime checks
	// of received leaves and key packages, for replaying recorded groups.
	Now func() time.Time
	// PSKs resolves external PSKs and other groups' resumption PSKs.
	PSKs PSKResolver
	// ValidateCredential, if set, is the Authentication Service (§5.3.1):
	// it accepts or rejects the credential of every leaf the group sees.
	ValidateCredential func(cred *wire.Credential, signatureKey []byte) error
}

func (c *Config) rand() io.Reader {
	if c.Rand != nil {
		return c.Rand
	}
	return rand.Reader
}

func (c *Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// creationTime is the time new lifetimes start from: Now, or the system
// clock when Now disables lifetime checks.
func (c *Config) creationTime() time.Time {
	if t := c.now(); !t.IsZero() {
		return t
	}
	return time.Now()
}

func (c *Config) tolerance() uint32 {
	switch {
	case c.OutOfOrderTolerance == 0:
		return DefaultOutOfOrderTolerance
	case c.OutOfOrderTolerance < 0:
		return 0
	}
	return uint32(c.OutOfOrderTolerance)
}

func (c *Config) maxForward() uint32 {
	switch {
	case c.MaxForwardDistance == 0:
		return DefaultMaxForwardDistance
	case c.MaxForwardDistance < 0:
		return 0
	}
	return uint32(c.MaxForwardDistance)
}

func (c *Config) keyPackageLifetime() time.Duration {
	if c.KeyPackageLifetime <= 0 {
		return DefaultKeyPackageLifetime
	}
	return c.KeyPackageLifetime
}

func (c *Config) handshakeWireFormat() wire.WireFormat {
	if c.EncryptHandshake {
		return wire.WireFormatPrivateMessage
	}
	return wire.WireFormatPublicMessage
}

// marshal encodes the persisted fields of the configuration, the
// join-config record (persist.ConfigValue).
func (c *Config) marshal() []byte {
	return persist.ConfigValue(&persist.Config{
		MaxPastEpochs:          c.MaxPastEpochs,
		NumberOfResumptionPSKs: c.NumberOfResumptionPSKs,
		OutOfOrderTolerance:    c.OutOfOrderTolerance,
		MaxForwardDistance:     c.MaxForwardDistance,
		PaddingBlock:           c.PaddingBlock,
		EncryptHandshake:       c.EncryptHandshake,
		RatchetTreeExtension:   c.RatchetTreeExtension,
		KeyPackageLifetime:     c.KeyPackageLifetime,
		MaxLeafLifetime:        c.MaxLeafLifetime,
	})
}

// unmarshal decodes the persisted fields into c, leaving the others.
func (c *Config) unmarshal(b []byte) error {
	p, err := persist.OpenConfig(b)
	if err != nil {
		return corrupt(persist.JoinConfigName, err)
	}
	c.MaxPastEpochs, c.NumberOfResumptionPSKs = p.MaxPastEpochs, p.NumberOfResumptionPSKs
	c.OutOfOrderTolerance, c.MaxForwardDistance = p.OutOfOrderTolerance, p.MaxForwardDistance
	c.PaddingBlock, c.EncryptHandshake, c.RatchetTreeExtension = p.PaddingBlock, p.EncryptHandshake, p.RatchetTreeExtension
	c.KeyPackageLifetime, c.MaxLeafLifetime = p.KeyPackageLifetime, p.MaxLeafLifetime
	return nil
}

// Identity is what a member presents in its leaf: its credential and
// signature key (§5.3), and the capabilities and extensions of its leaf
// nodes (§7.2).
type Identity struct {
	// Credential binds the member's identity to SigningKey's public key.
	Credential wire.Credential
	// SigningKey signs everything the member sends. Its suite must be the
	// group's.
	SigningKey *ciphersuite.SigningKey
	// Capabilities, if nil, defaults to DefaultCapabilities of the suite.
	Capabilities *wire.Capabilities
	// Extensions are the leaf node's extensions (each must be listed in
	// Capabilities unless it is a default extension).
	Extensions []wire.Extension
}

// ExtensionTypeLastResort is the last_resort KeyPackage extension of
// draft-ietf-mls-extensions: a KeyPackage carrying it may be used for many
// Welcomes and is not deleted when used.
const ExtensionTypeLastResort wire.ExtensionType = 0x000A

// DefaultCapabilities returns the capabilities of a leaf that supports
// suite, version mls10, basic and x509 credentials, the default proposal
// and extension types, and the last_resort extension.
func DefaultCapabilities(suite ciphersuite.ID) *wire.Capabilities {
	return &wire.Capabilities{
		Versions:     []wire.ProtocolVersion{wire.ProtocolVersionMLS10},
		CipherSuites: []uint16{uint16(suite)},
		Extensions:   []wire.ExtensionType{ExtensionTypeLastResort},
		Proposals:    []wire.ProposalType{},
		Credentials:  []wire.CredentialType{wire.CredentialTypeBasic, wire.CredentialTypeX509},
	}
}

// capabilities returns the identity's capabilities for suite, adding what
// its own credential and extensions need.
func (id *Identity) capabilities(suite ciphersuite.ID) wire.Capabilities {
	var c wire.Capabilities
	if id.Capabilities != nil {
		c = *id.Capabilities
		c.Versions = slices.Clone(c.Versions)
		c.CipherSuites = slices.Clone(c.CipherSuites)
		c.Extensions = slices.Clone(c.Extensions)
		c.Proposals = slices.Clone(c.Proposals)
		c.Credentials = slices.Clone(c.Credentials)
	} else {
		c = *DefaultCapabilities(suite)
	}
	if c.Versions == nil {
		c.Versions = []wire.ProtocolVersion{}
	}
	if c.Extensions == nil {
		c.Extensions = []wire.ExtensionType{}
	}
	if c.Proposals == nil {
		c.Proposals = []wire.ProposalType{}
	}
	if !slices.Contains(c.CipherSuites, uint16(suite)) {
		c.CipherSuites = append(c.CipherSuites, uint16(suite))
	}
	if !slices.Contains(c.Credentials, id.Credential.CredentialType) {
		c.Credentials = append(c.Credentials, id.Credential.CredentialType)
	}
	return c
}

func (id *Identity) check(suite *ciphersuite.Suite) error {
	if id == nil || id.SigningKey == nil {
		return fmt.Errorf("%w: identity without a signing key", ErrInvalidArgument)
	}
	if err := suite.ValidateSignaturePublicKey(id.SigningKey.PublicKey()); err != nil {
		return fmt.Errorf("%w: signing key is not of suite %v: %w", ErrInvalidArgument, suite.ID(), err)
	}
	return nil
}
