package engine

import (
	"log/slog"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// DefaultSuite is the cipher suite of new groups and key packages when
// Config.Suite is zero: MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, the
// suite RFC 9420 §17.1 makes mandatory to implement.
const DefaultSuite = ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519

// Config configures a member of a group. The embedded group.Config holds
// the protocol settings (MaxPastEpochs, NumberOfResumptionPSKs, sender
// ratchet tolerance, padding, handshake encryption, the ratchet_tree
// extension in Welcomes, required capabilities, external senders, key
// package lifetime); the ones that shape the group are stored with it at
// create or join, the others (Rand, Now, PSKs, ValidateCredential) are
// given again at load. The remaining fields are used when a group or key
// package is made. Handles used from several goroutines at once must not
// share a Rand that is unsafe for concurrent use (crypto/rand.Reader, the
// default, is safe).
type Config struct {
	group.Config

	// Suite is the cipher suite of a new group or key package; zero means
	// DefaultSuite.
	Suite ciphersuite.ID
	// GroupID is the id of a new group; nil draws KDF.Nh random bytes.
	GroupID []byte
	// Extensions are a new group's GroupContext extensions.
	Extensions []wire.Extension
	// Capabilities are the member's leaf capabilities; nil means
	// group.DefaultCapabilities of the suite.
	Capabilities *wire.Capabilities
	// LeafExtensions are the member's leaf node extensions.
	LeafExtensions []wire.Extension
	// ApplyAttempts bounds how often one operation hands its unit to the
	// backend while the backend answers storage.ErrUnknownOutcome (with
	// backoff from 5 ms to 500 ms, and never beyond the context); zero
	// means DefaultApplyAttempts. After the last, the operation fails with
	// ErrUnknownOutcome and the handle keeps its result (see Resolve).
	ApplyAttempts int
	// Logger receives operational logs (group ids, epochs, record counts;
	// never secrets). Nil discards them.
	Logger *slog.Logger
}

func (c *Config) suite() ciphersuite.ID {
	if c.Suite == 0 {
		return DefaultSuite
	}
	return c.Suite
}

func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

func (c *Config) identity(signer *ciphersuite.SigningKey, cred wire.Credential) *group.Identity {
	return &group.Identity{Credential: cred, SigningKey: signer, Capabilities: c.Capabilities, Extensions: c.LeafExtensions}
}

// orDefault returns a copy of cfg, or an empty Config.
func orDefault(cfg *Config) Config {
	if cfg == nil {
		return Config{}
	}
	return *cfg
}
