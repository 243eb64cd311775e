package wire

import "github.com/mlsengine/mlsengine/mls/codec"

// Capabilities lists what a client supports (§7.2). Unknown values, GREASE
// included, are kept: receivers must ignore them (§13.4).
//
//	struct {
//	    ProtocolVersion versions<V>;
//	    CipherSuite cipher_suites<V>;
//	    ExtensionType extensions<V>;
//	    ProposalType proposals<V>;
//	    CredentialType credentials<V>;
//	} Capabilities;
type Capabilities struct {
	Versions     []ProtocolVersion
	CipherSuites []uint16
	Extensions   []ExtensionType
	Proposals    []ProposalType
	Credentials  []CredentialType
}

// MarshalMLS encodes c.
func (c *Capabilities) MarshalMLS(w *codec.Writer) {
	writeUint16s(w, c.Versions)
	writeUint16s(w, c.CipherSuites)
	writeUint16s(w, c.Extensions)
	writeUint16s(w, c.Proposals)
	writeUint16s(w, c.Credentials)
}

// UnmarshalMLS decodes a Capabilities.
func (c *Capabilities) UnmarshalMLS(r *codec.Reader) {
	*c = Capabilities{
		Versions:     readUint16s[ProtocolVersion](r),
		CipherSuites: readUint16s[uint16](r),
		Extensions:   readUint16s[ExtensionType](r),
		Proposals:    readUint16s[ProposalType](r),
		Credentials:  readUint16s[CredentialType](r),
	}
}

// Lifetime bounds the validity of a KeyPackage's LeafNode, in seconds since
// the Unix epoch (§7.2).
//
//	struct {
//	    uint64 not_before;
//	    uint64 not_after;
//	} Lifetime;
type Lifetime struct {
	NotBefore uint64
	NotAfter  uint64
}

// MarshalMLS encodes l.
func (l *Lifetime) MarshalMLS(w *codec.Writer) {
	w.Uint64(l.NotBefore)
	w.Uint64(l.NotAfter)
}

// UnmarshalMLS decodes a Lifetime.
func (l *Lifetime) UnmarshalMLS(r *codec.Reader) {
	*l = Lifetime{NotBefore: r.Uint64(), NotAfter: r.Uint64()}
}

// LeafNode describes a member's appearance in the group (§7.2). Lifetime is
// set only for the key_package source and ParentHash only for commit.
//
// A LeafNode decoded from the wire remembers its encoding: TBS and Bytes
// return (parts of) the received bytes. After modifying a decoded LeafNode,
// call ClearRaw.
//
//	struct {
//	    HPKEPublicKey encryption_key;
//	    SignaturePublicKey signature_key;
//	    Credential credential;
//	    Capabilities capabilities;
//
//	    LeafNodeSource leaf_node_source;
//	    select (LeafNode.leaf_node_source) {
//	        case key_package:
//	            Lifetime lifetime;
//
//	        case update:
//	            struct{};
//
//	        case commit:
//	            opaque parent_hash<V>;
//	    };
//
//	    Extension extensions<V>;
//	    /* SignWithLabel(., "LeafNodeTBS", LeafNodeTBS) */
//	    opaque signature<V>;
//	} LeafNode;
type LeafNode struct {
	EncryptionKey  []byte
	SignatureKey   []byte
	Credential     Credential
	Capabilities   Capabilities
	LeafNodeSource LeafNodeSource
	Lifetime       *Lifetime // key_package
	ParentHash     []byte    // commit
	Extensions     []Extension
	Signature      []byte

	raw    []byte // the received encoding, nil if built in code
	tbsLen int    // length of the part of raw before signature
}

// content returns the LeafNodeTBS of ln for the given group context; the
// slices are shared with ln.
func (ln *LeafNode) content(groupID []byte, leafIndex uint32) *LeafNodeTBS {
	return &LeafNodeTBS{
		EncryptionKey:  ln.EncryptionKey,
		SignatureKey:   ln.SignatureKey,
		Credential:     ln.Credential,
		Capabilities:   ln.Capabilities,
		LeafNodeSource: ln.LeafNodeSource,
		Lifetime:       ln.Lifetime,
		ParentHash:     ln.ParentHash,
		Extensions:     ln.Extensions,
		GroupID:        groupID,
		LeafIndex:      leafIndex,
	}
}

// MarshalMLS encodes ln from its fields (never from the received bytes).
func (ln *LeafNode) MarshalMLS(w *codec.Writer) {
	ln.content(nil, 0).marshalContent(w)
	w.VarBytes(ln.Signature)
}

// UnmarshalMLS decodes a LeafNode and remembers its encoding.
func (ln *LeafNode) UnmarshalMLS(r *codec.Reader) {
	start := r.Rest()
	var t LeafNodeTBS
	t.unmarshalContent(r)
	tbsLen := len(start) - r.Len()
	*ln = LeafNode{
		EncryptionKey:  t.EncryptionKey,
		SignatureKey:   t.SignatureKey,
		Credential:     t.Credential,
		Capabilities:   t.Capabilities,
		LeafNodeSource: t.LeafNodeSource,
		Lifetime:       t.Lifetime,
		ParentHash:     t.ParentHash,
		Extensions:     t.Extensions,
		Signature:      r.VarBytes(),
	}
	if ln.raw = captureRaw(r, start); ln.raw != nil {
		ln.tbsLen = tbsLen
	}
}

// TBS returns the encoded LeafNodeTBS that ln's signature covers (§7.2).
// groupID and leafIndex are used only for the update and commit sources.
// For a decoded LeafNode the fields before the signature are the received
// bytes.
func (ln *LeafNode) TBS(groupID []byte, leafIndex uint32) []byte {
	if ln.raw == nil {
		return encode(ln.content(groupID, leafIndex))
	}
	var w codec.Writer
	w.Raw(ln.raw[:ln.tbsLen])
	if ln.LeafNodeSource.inGroup() {
		w.VarBytes(groupID)
		w.Uint32(leafIndex)
	}
	b, err := w.Result()
	if err != nil {
		return nil
	}
	return b
}

// Bytes returns the encoding of ln: the received bytes if ln was decoded,
// else a fresh encoding.
func (ln *LeafNode) Bytes() []byte {
	if ln.raw != nil {
		return ln.raw
	}
	return encode(ln)
}

// Raw returns the bytes ln was decoded from, or nil if it was built in code
// or ClearRaw was called. The caller must not modify them.
func (ln *LeafNode) Raw() []byte { return ln.raw }

// ClearRaw forgets the received encoding, so that TBS and Bytes re-encode
// the fields. Call it after modifying a decoded LeafNode.
func (ln *LeafNode) ClearRaw() { ln.raw, ln.tbsLen = nil, 0 }

// Equal reports whether ln and o encode identically.
func (ln *LeafNode) Equal(o *LeafNode) bool {
	return string(encode(ln)) == string(encode(o))
}

// inGroup reports whether a leaf node of source s is signed in the context
// of a group, i.e. its LeafNodeTBS carries group_id and leaf_index (§7.2).
func (s LeafNodeSource) inGroup() bool {
	return s == LeafNodeSourceUpdate || s == LeafNodeSourceCommit
}

// LeafNodeTBS is the content a LeafNode's signature covers (§7.2): the
// LeafNode without its signature, plus group_id and leaf_index when the leaf
// was created in a group (update and commit sources). LeafNode.TBS encodes
// it directly.
//
//	struct {
//	    HPKEPublicKey encryption_key;
//	    SignaturePublicKey signature_key;
//	    Credential credential;
//	    Capabilities capabilities;
//
//	    LeafNodeSource leaf_node_source;
//	    select (LeafNodeTBS.leaf_node_source) {
//	        case key_package:
//	            Lifetime lifetime;
//
//	        case update:
//	            struct{};
//
//	        case commit:
//	            opaque parent_hash<V>;
//	    };
//
//	    Extension extensions<V>;
//
//	    select (LeafNodeTBS.leaf_node_source) {
//	        case key_package:
//	            struct{};
//
//	        case update:
//	            opaque group_id<V>;
//	            uint32 leaf_index;
//
//	        case commit:
//	            opaque group_id<V>;
//	            uint32 leaf_index;
//	    };
//	} LeafNodeTBS;
type LeafNodeTBS struct {
	EncryptionKey  []byte
	SignatureKey   []byte
	Credential     Credential
	Capabilities   Capabilities
	LeafNodeSource LeafNodeSource
	Lifetime       *Lifetime // key_package
	ParentHash     []byte    // commit
	Extensions     []Extension
	GroupID        []byte // update, commit
	LeafIndex      uint32 // update, commit
}

// marshalContent encodes the fields LeafNode and LeafNodeTBS share.
func (t *LeafNodeTBS) marshalContent(w *codec.Writer) {
	w.VarBytes(t.EncryptionKey)
	w.VarBytes(t.SignatureKey)
	t.Credential.MarshalMLS(w)
	t.Capabilities.MarshalMLS(w)
	w.Uint8(uint8(t.LeafNodeSource))
	switch t.LeafNodeSource {
	case LeafNodeSourceKeyPackage:
		orZero(t.Lifetime).MarshalMLS(w)
	case LeafNodeSourceCommit:
		w.VarBytes(t.ParentHash)
	}
	writeExtensions(w, t.Extensions)
}

// unmarshalContent decodes the fields LeafNode and LeafNodeTBS share.
func (t *LeafNodeTBS) unmarshalContent(r *codec.Reader) {
	*t = LeafNodeTBS{EncryptionKey: r.VarBytes(), SignatureKey: r.VarBytes()}
	t.Credential.UnmarshalMLS(r)
	t.Capabilities.UnmarshalMLS(r)
	t.LeafNodeSource = LeafNodeSource(r.Uint8())
	switch t.LeafNodeSource {
	case LeafNodeSourceKeyPackage:
		t.Lifetime = new(Lifetime)
		t.Lifetime.UnmarshalMLS(r)
	case LeafNodeSourceUpdate:
	case LeafNodeSourceCommit:
		t.ParentHash = r.VarBytes()
	default:
		unknown(r, "leaf node source", t.LeafNodeSource)
	}
	t.Extensions = readExtensions(r)
}

// MarshalMLS encodes t.
func (t *LeafNodeTBS) MarshalMLS(w *codec.Writer) {
	t.marshalContent(w)
	if t.LeafNodeSource.inGroup() {
		w.VarBytes(t.GroupID)
		w.Uint32(t.LeafIndex)
	}
}

// UnmarshalMLS decodes a LeafNodeTBS.
func (t *LeafNodeTBS) UnmarshalMLS(r *codec.Reader) {
	t.unmarshalContent(r)
	if t.LeafNodeSource.inGroup() {
		t.GroupID = r.VarBytes()
		t.LeafIndex = r.Uint32()
	}
}
