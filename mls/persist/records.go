package persist

import (
	"encoding/hex"
	"math"
	"strconv"
	"time"

	"github.com/mlsengine/mlsengine/mls/secret"
)

// The persisted form of a group, in storage's records. Every record is in
// the group's scope unless noted. A value is either an MLS structure in its
// RFC 9420 encoding (v "-" below) or an envelope (envelope.go): a
// MessagePack array whose element 0 is the layout version v, followed by
// the fields listed. "bin" is a MessagePack bin, "?" marks a field that is nil
// when absent. MLS structures inside envelopes are bins holding their RFC
// 9420 encoding, so that the bytes a signature or hash reference covers
// (§5.2, §6.1) are the bytes stored. Decoders accept only the version v.
// Package mls/group decides which records to write when, and rebuilds a
// group from them.
//
//	Class        Name                           v  Value
//	Public       join-config                    1  [v, max_past_epochs uint, resumption_psks uint,
//	                                                out_of_order_tolerance int, max_forward_distance int,
//	                                                padding_block uint, encrypt_handshake bool,
//	                                                ratchet_tree_extension bool, key_package_lifetime int,
//	                                                max_leaf_lifetime int]: Config's persisted fields,
//	                                                durations in nanoseconds
//	Public       state                          1  [v, status uint, own leaf index uint,
//	                                                ?bin committed ReInit (§12.1.5)]
//	Public       context                        -  GroupContext (§8.1)
//	Public       transcript/interim             1  [v, bin interim_transcript_hash (§8.2)]
//	Public       confirmation-tag               1  [v, bin confirmation_tag (§6.1)]
//	Public       tree/size                      2  [v, leaf count uint] (layout 1: [1, leaf count uint,
//	                                                chunk size uint])
//	Public       tree/t/<r>                     1  [v, bin hashes, bin nodes]: the tile of node r, its
//	                                                nodes and their tree hashes (tree.go)
//	Public       tree/x/<node>                  -  LeafNode or ParentNode of a node too large for its tile
//	Public       tree/<chunk size>/<k>          -  layout 1: nodes [k*size, (k+1)*size) of the tree,
//	                                                each an optional<Node> (§12.4.3.3), concatenated
//	Public       proposal/<ref>                 1  [v, queue position uint, bin AuthenticatedContent (§6.1)]
//	Public       pending-commit                 -  AuthenticatedContent of the own pending commit, its
//	                                                first 128 KiB; the rest in pending-commit/more/<k>
//	Public       past/<e>/context               -  GroupContext of retained past epoch e
//	Public       past/<e>/delta/<k>             1  [v, leaf count uint, [leaf uint, ?bin signature_key,
//	                                                ...]]: the leaves of epoch e whose signature key
//	                                                differs in the epoch after it (past.go)
//	Public       past/<e>/members/<k>           1  layout 1: [v, [?bin signature_key, ...]]: leaves
//	                                                [1024k, 1024(k+1)) of epoch e, nil if blank
//	KeyMaterial  epoch/<e>/secrets              1  [v, bin exporter, bin external, bin confirmation,
//	                                                bin membership, bin epoch_authenticator, bin init]:
//	                                                the secrets of §8 the epoch keeps, Nh bytes each
//	KeyMaterial  epoch/<e>/sender-data          1  [v, bin sender_data_secret (§6.3.2)]
//	KeyMaterial  epoch/<e>/tree/<node>          1  [v, bin secret] of a secret tree node none of
//	                                                whose children is derived yet (§9, §9.2)
//	KeyMaterial  epoch/<e>/ratchet/<leaf>/<h|a>/<g>
//	                                            1  [v, bin sender ratchet secret of generation g (§9.1)],
//	                                                empty once exhausted (g = 2^32)
//	KeyMaterial  epoch/<e>/key/<leaf>/<h|a>/<g> 1  [v, bin key, bin nonce] of a skipped generation g
//	KeyMaterial  resumption/<e>                 1  [v, bin resumption_psk (§8.6)]
//	KeyMaterial  hpke/<node>/<id>               1  [v, bin HPKE private key of a tree node (§4.2)]
//	KeyMaterial  pending-update/<ref>           1  [v, bin leaf HPKE private key of an own Update proposal]
//	KeyMaterial  pending-commit/secrets         1  [v, bin commit_secret, new leaf index uint,
//	                                                bin leaf HPKE private key,
//	                                                [[node uint, bin HPKE private key], ...]]
//	                                                of the pending commit
//	(client) Public       key-package/<ref>     -  KeyPackage (§10)
//	(client) KeyMaterial  key-package/<ref>     1  [v, bin init private key, bin encryption private key]
//
// HPKE private keys are in the KEM's SerializePrivateKey form (RFC 9180
// §7.1.2). Key material names change whenever the secret does, so that
// every secret dies by an explicit deletion.

// Envelope versions: each layout has its own, so that one can change
// without touching the others.
const (
	configVersion         = 1 // join-config
	stateVersion          = 1 // state
	proposalVersion       = 1 // proposal/<ref>
	pastMembersVersion    = 1 // past/<e>/members/<k>
	pastDeltaVersion      = 1 // past/<e>/delta/<k>
	epochSecretsVersion   = 1 // epoch/<e>/secrets
	keptKeyVersion        = 1 // epoch/<e>/key/...
	pendingSecretsVersion = 1 // pending-commit/secrets
	keyPackageKeysVersion = 1 // client key-package/<ref> key material

	// ValueVersion is the version of the records that hold one value,
	// [v, bin] (ValueEnvelope, OpenValue, OpenSecret): transcript/interim,
	// confirmation-tag, sender-data, secret tree nodes and ratchets,
	// resumption, hpke, pending-update.
	ValueVersion = 1
)

// Names of the records that have one per group.
const (
	JoinConfigName      = "join-config"
	StateName           = "state"
	ContextName         = "context"
	InterimName         = "transcript/interim"
	ConfirmationTagName = "confirmation-tag"
	TreeSizeName        = "tree/size"
	PendingSecretsName  = "pending-commit/secrets"
)

// Prefixes of the names of the records there are many of, for a restore
// to find them.
const (
	EpochNamePrefix      = "epoch/"
	ResumptionNamePrefix = "resumption/"
	ProposalNamePrefix   = "proposal/"
	HPKENamePrefix       = "hpke/"
	PendingUpdatePrefix  = "pending-update/"
	TileNamePrefix       = "tree/t/"
	SenderDataSuffix     = "/sender-data"
)

// EpochPrefix is the common prefix of the key material records of epoch
// e, which die with it.
func EpochPrefix(e uint64) string { return EpochNamePrefix + strconv.FormatUint(e, 10) + "/" }

// EpochSecretsName names the secrets epoch e keeps (EpochSecretsValue).
func EpochSecretsName(e uint64) string { return EpochPrefix(e) + "secrets" }

// SenderDataName names the sender_data_secret of epoch e.
func SenderDataName(e uint64) string { return EpochPrefix(e) + "sender-data" }

// SecretNodeName names the secret of node x of epoch e's secret tree.
func SecretNodeName(e uint64, x uint32) string {
	return EpochPrefix(e) + "tree/" + strconv.FormatUint(uint64(x), 10)
}

// RatchetName names the handshake (or application) ratchet secret of leaf
// l in epoch e whose next generation is next: the name changes with the
// secret, so that a ratchet step is a put and a delete.
func RatchetName(e uint64, l uint32, handshake bool, next uint64) string {
	return EpochPrefix(e) + "ratchet/" + strconv.FormatUint(uint64(l), 10) + "/" + ratchetLetter(handshake) + "/" + strconv.FormatUint(next, 10)
}

// KeptKeyName names the kept key of generation gen of a ratchet of leaf l
// in epoch e (KeptKeyValue).
func KeptKeyName(e uint64, l uint32, handshake bool, gen uint32) string {
	return EpochPrefix(e) + "key/" + strconv.FormatUint(uint64(l), 10) + "/" + ratchetLetter(handshake) + "/" + strconv.FormatUint(uint64(gen), 10)
}

func ratchetLetter(handshake bool) string {
	if handshake {
		return "h"
	}
	return "a"
}

// ResumptionName names the resumption_psk of epoch e.
func ResumptionName(e uint64) string { return ResumptionNamePrefix + strconv.FormatUint(e, 10) }

// ProposalName names the queued proposal of reference ref
// (QueuedValue).
func ProposalName(ref []byte) string { return ProposalNamePrefix + hex.EncodeToString(ref) }

// HPKEName names the HPKE private key of tree node x whose public key
// hashes to keyHash: a key that survives an epoch keeps its record, one
// that replaces it gets another.
func HPKEName(x uint32, keyHash []byte) string {
	return HPKENamePrefix + strconv.FormatUint(uint64(x), 10) + "/" + hex.EncodeToString(keyHash[:8])
}

// PendingUpdateName names the leaf private key of the own Update proposal
// whose reference is hex-encoded as id.
func PendingUpdateName(id string) string { return PendingUpdatePrefix + id }

// KeyPackageName names the client-scope records of the key package of
// reference ref: the KeyPackage (Public) and its private keys
// (KeyMaterial, KeyPackageKeysValue).
func KeyPackageName(ref []byte) string { return "key-package/" + hex.EncodeToString(ref) }

// pendingChunk bounds each record of the pending commit, whose
// AuthenticatedContent grows with the proposals by value and the
// UpdatePath (hundreds of KiB for a thousand Adds), so that it fits the
// storage's bound on a value.
const pendingChunk = 128 << 10

// PendingParts splits the pending commit's AuthenticatedContent into the
// values of its records, PendingPartName(k) for part k.
func PendingParts(b []byte) [][]byte {
	var out [][]byte
	for len(b) > pendingChunk {
		out = append(out, b[:pendingChunk])
		b = b[pendingChunk:]
	}
	return append(out, b)
}

// PendingPartName names part k of the pending commit: "pending-commit"
// for the first, "pending-commit/more/<k>" for the others.
func PendingPartName(k int) string {
	if k == 0 {
		return "pending-commit"
	}
	return "pending-commit/more/" + strconv.Itoa(k)
}

// Config is what the join-config record keeps of a group's
// configuration: the fields that shape its state. The others (clock,
// randomness, callbacks) belong to the process that loads it.
type Config struct {
	MaxPastEpochs          int
	NumberOfResumptionPSKs int
	OutOfOrderTolerance    int
	MaxForwardDistance     int
	PaddingBlock           int
	EncryptHandshake       bool
	RatchetTreeExtension   bool
	KeyPackageLifetime     time.Duration
	MaxLeafLifetime        time.Duration
}

// ConfigValue is the join-config record:
//
//	[configVersion, max_past_epochs uint, resumption_psks uint,
//	 out_of_order_tolerance int, max_forward_distance int, padding_block uint,
//	 encrypt_handshake bool, ratchet_tree_extension bool,
//	 key_package_lifetime int, max_leaf_lifetime int]
//
// Tolerance and forward distance keep their sign (negative means none);
// the lifetimes are in nanoseconds. Negative counts are stored as 0.
func ConfigValue(c *Config) []byte {
	return Envelope(func(e *Encoder) {
		e.Array(10)
		e.Uint(configVersion)
		e.Uint(uint64(max(c.MaxPastEpochs, 0)))
		e.Uint(uint64(max(c.NumberOfResumptionPSKs, 0)))
		e.Int(int64(c.OutOfOrderTolerance))
		e.Int(int64(c.MaxForwardDistance))
		e.Uint(uint64(max(c.PaddingBlock, 0)))
		e.Bool(c.EncryptHandshake)
		e.Bool(c.RatchetTreeExtension)
		e.Int(int64(c.KeyPackageLifetime))
		e.Int(int64(c.MaxLeafLifetime))
	})
}

// OpenConfig decodes a record written by ConfigValue.
func OpenConfig(b []byte) (Config, error) {
	d := NewDecoder(b)
	d.Open(configVersion, 9)
	toInt := func(v int64) int {
		if int64(int(v)) != v {
			d.Fail("integer %d out of range", v)
		}
		return int(v)
	}
	var c Config
	c.MaxPastEpochs = int(d.Uint(math.MaxInt))
	c.NumberOfResumptionPSKs = int(d.Uint(math.MaxInt))
	c.OutOfOrderTolerance = toInt(d.Int())
	c.MaxForwardDistance = toInt(d.Int())
	c.PaddingBlock = int(d.Uint(math.MaxInt))
	c.EncryptHandshake = d.Bool()
	c.RatchetTreeExtension = d.Bool()
	c.KeyPackageLifetime = time.Duration(d.Int())
	c.MaxLeafLifetime = time.Duration(d.Int())
	if err := d.Finish(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// StateValue is the state record, with the encoding of the committed
// ReInit or nil:
//
//	[stateVersion, status uint, own leaf uint, ?bin ReInit]
func StateValue(status uint8, own uint32, reinit []byte) []byte {
	return Envelope(func(e *Encoder) {
		e.Array(4)
		e.Uint(stateVersion)
		e.Uint(uint64(status))
		e.Uint(uint64(own))
		if reinit == nil {
			e.Nil()
		} else {
			e.Bin(reinit)
		}
	})
}

// OpenState decodes a record written by StateValue.
func OpenState(v []byte) (status uint8, own uint32, reinit []byte, err error) {
	d := NewDecoder(v)
	d.Open(stateVersion, 3)
	status = uint8(d.Uint(math.MaxUint8))
	own = uint32(d.Uint(math.MaxUint32))
	if !d.IsNil() {
		reinit = d.Bin(-1)
	}
	return status, own, reinit, d.Finish()
}

// QueuedValue is the proposal/<ref> record of the proposal at position
// seq of the queue, whose AuthenticatedContent encodes as ac:
//
//	[proposalVersion, seq uint, bin AuthenticatedContent]
//
// The position keeps the queue's order, which decides the order of the
// proposals in the member's next commit (§12.2).
func QueuedValue(seq int, ac []byte) []byte {
	return Envelope(func(e *Encoder) {
		e.Array(3)
		e.Uint(proposalVersion)
		e.Uint(uint64(seq))
		e.Bin(ac)
	})
}

// OpenQueued decodes a record written by QueuedValue.
func OpenQueued(v []byte) (seq uint32, ac []byte, err error) {
	d := NewDecoder(v)
	d.Open(proposalVersion, 2)
	seq = uint32(d.Uint(math.MaxUint32))
	ac = d.Bin(-1)
	return seq, ac, d.Finish()
}

// EpochSecretsValue is the epoch/<e>/secrets record of the secrets an
// epoch keeps, in the order of keyschedule's Stored:
//
//	[epochSecretsVersion, bin exporter, bin external, bin confirmation,
//	 bin membership, bin authenticator, bin init]
func EpochSecretsValue(all []secret.Secret) []byte {
	return Envelope(func(enc *Encoder) {
		enc.Array(1 + len(all))
		enc.Uint(epochSecretsVersion)
		for _, s := range all {
			enc.Bin(s.Bytes())
		}
	})
}

// OpenEpochSecrets decodes a record written by EpochSecretsValue of n
// secrets of nh bytes each. The secrets are copies, owned by the caller:
// nothing refers to b afterwards.
func OpenEpochSecrets(b []byte, n, nh int) ([]secret.Secret, error) {
	all := make([]secret.Secret, n)
	d := NewDecoder(b)
	d.Open(epochSecretsVersion, n)
	for i := range all {
		all[i] = d.Secret(nh)
	}
	if err := d.Finish(); err != nil {
		for i := range all {
			all[i].Clear()
		}
		return nil, err
	}
	return all, nil
}

// KeptKeyValue is a kept key record, the key and nonce of a skipped
// generation:
//
//	[keptKeyVersion, bin key, bin nonce]
func KeptKeyValue(key, nonce secret.Secret) []byte {
	return Envelope(func(e *Encoder) {
		e.Array(3)
		e.Uint(keptKeyVersion)
		e.Bin(key.Bytes())
		e.Bin(nonce.Bytes())
	})
}

// OpenKeptKey decodes a kept key record of a key of nk and a nonce of nn
// bytes, copies owned by the caller.
func OpenKeptKey(v []byte, nk, nn int) (key, nonce secret.Secret, err error) {
	d := NewDecoder(v)
	d.Open(keptKeyVersion, 2)
	key, nonce = d.Secret(nk), d.Secret(nn)
	if err := d.Finish(); err != nil {
		key.Clear()
		nonce.Clear()
		return secret.Secret{}, secret.Secret{}, err
	}
	return key, nonce, nil
}

// NodeKey is the HPKE private key of a tree node, in the KEM's
// SerializePrivateKey form.
type NodeKey struct {
	Node uint32
	Key  secret.Secret
}

// PendingSecrets are the secrets of the own pending commit that cannot be
// recomputed from its content because they came from the randomness of
// the commit (§12.4): the commit secret, and the TreeKEM private keys of
// the committer's new path.
type PendingSecrets struct {
	CommitSecret secret.Secret // empty for a commit without a path
	Leaf         uint32        // the committer's new leaf index
	LeafKey      secret.Secret
	Nodes        []NodeKey
}

// Clear clears every secret of s.
func (s *PendingSecrets) Clear() {
	s.CommitSecret.Clear()
	s.LeafKey.Clear()
	for i := range s.Nodes {
		s.Nodes[i].Key.Clear()
	}
}

// PendingSecretsValue is the pending-commit/secrets record:
//
//	[pendingSecretsVersion, bin commit_secret, leaf uint, bin leaf key,
//	 [[node uint, bin key], ...]]
func PendingSecretsValue(s *PendingSecrets) []byte {
	return Envelope(func(e *Encoder) {
		e.Array(5)
		e.Uint(pendingSecretsVersion)
		e.Bin(s.CommitSecret.Bytes())
		e.Uint(uint64(s.Leaf))
		e.Bin(s.LeafKey.Bytes())
		e.Array(len(s.Nodes))
		for _, nk := range s.Nodes {
			e.Array(2)
			e.Uint(uint64(nk.Node))
			e.Bin(nk.Key.Bytes())
		}
	})
}

// OpenPendingSecrets decodes a record written by PendingSecretsValue of a
// suite whose hash is nh bytes long. The secrets are copies owned by the
// caller.
func OpenPendingSecrets(v []byte, nh int) (*PendingSecrets, error) {
	d := NewDecoder(v)
	d.Open(pendingSecretsVersion, 4)
	s := &PendingSecrets{}
	// Empty for a commit without a path: the key schedule then uses the
	// zero vector (§8).
	s.CommitSecret = d.Secret(-1)
	if l := s.CommitSecret.Len(); l != 0 && l != nh {
		d.Fail("commit secret of %d bytes", l)
	}
	s.Leaf = uint32(d.Uint(math.MaxUint32))
	s.LeafKey = d.Secret(-1)
	n := d.Array(math.MaxUint16)
	s.Nodes = make([]NodeKey, 0, n)
	for range n {
		if d.Array(2) != 2 {
			d.Fail("node key of the wrong length")
		}
		node := uint32(d.Uint(math.MaxUint32))
		s.Nodes = append(s.Nodes, NodeKey{Node: node, Key: d.Secret(-1)})
	}
	if err := d.Finish(); err != nil {
		s.Clear()
		return nil, err
	}
	return s, nil
}

// KeyPackageKeysValue is the key material record of a key package, its
// init and encryption private keys:
//
//	[keyPackageKeysVersion, bin init key, bin encryption key]
func KeyPackageKeysValue(initKey, encryptionKey secret.Secret) []byte {
	return Envelope(func(e *Encoder) {
		e.Array(3)
		e.Uint(keyPackageKeysVersion)
		e.Bin(initKey.Bytes())
		e.Bin(encryptionKey.Bytes())
	})
}

// OpenKeyPackageKeys decodes a record written by KeyPackageKeysValue into
// copies owned by the caller.
func OpenKeyPackageKeys(v []byte) (initKey, encryptionKey secret.Secret, err error) {
	d := NewDecoder(v)
	d.Open(keyPackageKeysVersion, 2)
	initKey, encryptionKey = d.Secret(-1), d.Secret(-1)
	if err := d.Finish(); err != nil {
		initKey.Clear()
		encryptionKey.Clear()
		return secret.Secret{}, secret.Secret{}, err
	}
	return initKey, encryptionKey, nil
}
