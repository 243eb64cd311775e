package wire

import "github.com/mlsengine/mlsengine/mls/codec"

// KeyPackage is a client's pre-published offer to be added to groups (§10).
// Only version mls10 is accepted on decoding: the layout of other versions
// is unknown.
//
// A KeyPackage decoded from the wire remembers its encoding: TBS and Bytes
// (the input of its KeyPackageRef, §5.2) return (parts of) the received
// bytes. After modifying a decoded KeyPackage, call ClearRaw.
//
//	struct {
//	    ProtocolVersion version;
//	    CipherSuite cipher_suite;
//	    HPKEPublicKey init_key;
//	    LeafNode leaf_node;
//	    Extension extensions<V>;
//	    /* SignWithLabel(., "KeyPackageTBS", KeyPackageTBS) */
//	    opaque signature<V>;
//	} KeyPackage;
type KeyPackage struct {
	Version     ProtocolVersion
	CipherSuite uint16
	InitKey     []byte
	LeafNode    LeafNode
	Extensions  []Extension
	Signature   []byte

	raw    []byte // the received encoding, nil if built in code
	tbsLen int    // length of the part of raw before signature
}

func (kp *KeyPackage) tbs() *KeyPackageTBS {
	return &KeyPackageTBS{
		Version:     kp.Version,
		CipherSuite: kp.CipherSuite,
		InitKey:     kp.InitKey,
		LeafNode:    kp.LeafNode,
		Extensions:  kp.Extensions,
	}
}

// MarshalMLS encodes kp from its fields (never from the received bytes).
func (kp *KeyPackage) MarshalMLS(w *codec.Writer) {
	kp.tbs().MarshalMLS(w)
	w.VarBytes(kp.Signature)
}

// UnmarshalMLS decodes a KeyPackage and remembers its encoding.
func (kp *KeyPackage) UnmarshalMLS(r *codec.Reader) {
	start := r.Rest()
	var t KeyPackageTBS
	t.UnmarshalMLS(r)
	tbsLen := len(start) - r.Len()
	*kp = KeyPackage{
		Version:     t.Version,
		CipherSuite: t.CipherSuite,
		InitKey:     t.InitKey,
		LeafNode:    t.LeafNode,
		Extensions:  t.Extensions,
		Signature:   r.VarBytes(),
	}
	if kp.raw = captureRaw(r, start); kp.raw != nil {
		kp.tbsLen = tbsLen
	}
}

// TBS returns the encoded KeyPackageTBS that kp's signature covers (§10):
// the received bytes before the signature if kp was decoded.
func (kp *KeyPackage) TBS() []byte {
	if kp.raw != nil {
		return kp.raw[:kp.tbsLen:kp.tbsLen]
	}
	return encode(kp.tbs())
}

// Bytes returns the encoding of kp, the value hashed into its KeyPackageRef
// (§5.2): the received bytes if kp was decoded, else a fresh encoding.
func (kp *KeyPackage) Bytes() []byte {
	if kp.raw != nil {
		return kp.raw
	}
	return encode(kp)
}

// Raw returns the bytes kp was decoded from, or nil if it was built in code
// or ClearRaw was called. The caller must not modify them.
func (kp *KeyPackage) Raw() []byte { return kp.raw }

// ClearRaw forgets the received encodings of kp and of its LeafNode, so
// that TBS and Bytes re-encode the fields. Call it after modifying a decoded
// KeyPackage.
func (kp *KeyPackage) ClearRaw() {
	kp.raw, kp.tbsLen = nil, 0
	kp.LeafNode.ClearRaw()
}

// KeyPackageTBS is the content a KeyPackage's signature covers (§10).
//
//	struct {
//	    ProtocolVersion version;
//	    CipherSuite cipher_suite;
//	    HPKEPublicKey init_key;
//	    LeafNode leaf_node;
//	    Extension extensions<V>;
//	} KeyPackageTBS;
type KeyPackageTBS struct {
	Version     ProtocolVersion
	CipherSuite uint16
	InitKey     []byte
	LeafNode    LeafNode
	Extensions  []Extension
}

// MarshalMLS encodes t.
func (t *KeyPackageTBS) MarshalMLS(w *codec.Writer) {
	w.Uint16(uint16(t.Version))
	w.Uint16(t.CipherSuite)
	w.VarBytes(t.InitKey)
	t.LeafNode.MarshalMLS(w)
	writeExtensions(w, t.Extensions)
}

// UnmarshalMLS decodes a KeyPackageTBS.
func (t *KeyPackageTBS) UnmarshalMLS(r *codec.Reader) {
	*t = KeyPackageTBS{Version: ProtocolVersion(r.Uint16())}
	if t.Version != ProtocolVersionMLS10 {
		unknown(r, "key package version", t.Version)
	}
	t.CipherSuite = r.Uint16()
	t.InitKey = r.VarBytes()
	t.LeafNode.UnmarshalMLS(r)
	t.Extensions = readExtensions(r)
}
