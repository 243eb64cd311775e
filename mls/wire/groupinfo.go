package wire

import "github.com/mlsengine/mlsengine/mls/codec"

// GroupContext summarizes the state of a group in one epoch (§8.1).
//
//	struct {
//	    ProtocolVersion version = mls10;
//	    CipherSuite cipher_suite;
//	    opaque group_id<V>;
//	    uint64 epoch;
//	    opaque tree_hash<V>;
//	    opaque confirmed_transcript_hash<V>;
//	    Extension extensions<V>;
//	} GroupContext;
type GroupContext struct {
	Version                 ProtocolVersion
	CipherSuite             uint16
	GroupID                 []byte
	Epoch                   uint64
	TreeHash                []byte
	ConfirmedTranscriptHash []byte
	Extensions              []Extension
}

// MarshalMLS encodes gc.
func (gc *GroupContext) MarshalMLS(w *codec.Writer) {
	w.Uint16(uint16(gc.Version))
	w.Uint16(gc.CipherSuite)
	w.VarBytes(gc.GroupID)
	w.Uint64(gc.Epoch)
	w.VarBytes(gc.TreeHash)
	w.VarBytes(gc.ConfirmedTranscriptHash)
	writeExtensions(w, gc.Extensions)
}

// UnmarshalMLS decodes a GroupContext; the version must be mls10.
func (gc *GroupContext) UnmarshalMLS(r *codec.Reader) {
	*gc = GroupContext{
		Version:                 readVersion(r, "group context version"),
		CipherSuite:             r.Uint16(),
		GroupID:                 r.VarBytes(),
		Epoch:                   r.Uint64(),
		TreeHash:                r.VarBytes(),
		ConfirmedTranscriptHash: r.VarBytes(),
		Extensions:              readExtensions(r),
	}
}

// Bytes returns the encoding of gc, the context of the key schedule and of
// EncryptWithLabel (§8, §7.6). It is nil only if a vector exceeds 2^30-1
// bytes.
func (gc *GroupContext) Bytes() []byte { return encode(gc) }

// GroupInfo describes a group to joiners, signed by a member (§12.4.3).
//
// A GroupInfo decoded from the wire remembers its encoding: TBS returns the
// received bytes before the signature. After modifying a decoded GroupInfo,
// call ClearRaw.
//
//	struct {
//	    GroupContext group_context;
//	    Extension extensions<V>;
//	    MAC confirmation_tag;
//	    uint32 signer;
//	    /* SignWithLabel(., "GroupInfoTBS", GroupInfoTBS) */
//	    opaque signature<V>;
//	} GroupInfo;
type GroupInfo struct {
	GroupContext    GroupContext
	Extensions      []Extension
	ConfirmationTag []byte
	Signer          uint32
	Signature       []byte

	raw    []byte // the received encoding, nil if built in code
	tbsLen int    // length of the part of raw before signature
}

func (gi *GroupInfo) tbs() *GroupInfoTBS {
	return &GroupInfoTBS{
		GroupContext:    gi.GroupContext,
		Extensions:      gi.Extensions,
		ConfirmationTag: gi.ConfirmationTag,
		Signer:          gi.Signer,
	}
}

// MarshalMLS encodes gi from its fields (never from the received bytes).
func (gi *GroupInfo) MarshalMLS(w *codec.Writer) {
	gi.tbs().MarshalMLS(w)
	w.VarBytes(gi.Signature)
}

// UnmarshalMLS decodes a GroupInfo and remembers its encoding.
func (gi *GroupInfo) UnmarshalMLS(r *codec.Reader) {
	start := r.Rest()
	var t GroupInfoTBS
	t.UnmarshalMLS(r)
	tbsLen := len(start) - r.Len()
	*gi = GroupInfo{
		GroupContext:    t.GroupContext,
		Extensions:      t.Extensions,
		ConfirmationTag: t.ConfirmationTag,
		Signer:          t.Signer,
		Signature:       r.VarBytes(),
	}
	if gi.raw = captureRaw(r, start); gi.raw != nil {
		gi.tbsLen = tbsLen
	}
}

// TBS returns the encoded GroupInfoTBS that gi's signature covers
// (§12.4.3): the received bytes before the signature if gi was decoded.
func (gi *GroupInfo) TBS() []byte {
	if gi.raw != nil {
		return gi.raw[:gi.tbsLen:gi.tbsLen]
	}
	return encode(gi.tbs())
}

// Bytes returns the encoding of gi: the received bytes if gi was decoded,
// else a fresh encoding.
func (gi *GroupInfo) Bytes() []byte {
	if gi.raw != nil {
		return gi.raw
	}
	return encode(gi)
}

// Raw returns the bytes gi was decoded from, or nil if it was built in code
// or ClearRaw was called. The caller must not modify them.
func (gi *GroupInfo) Raw() []byte { return gi.raw }

// ClearRaw forgets the received encoding, so that TBS and Bytes re-encode
// the fields. Call it after modifying a decoded GroupInfo.
func (gi *GroupInfo) ClearRaw() { gi.raw, gi.tbsLen = nil, 0 }

// GroupInfoTBS is the content a GroupInfo's signature covers (§12.4.3).
//
//	struct {
//	    GroupContext group_context;
//	    Extension extensions<V>;
//	    MAC confirmation_tag;
//	    uint32 signer;
//	} GroupInfoTBS;
type GroupInfoTBS struct {
	GroupContext    GroupContext
	Extensions      []Extension
	ConfirmationTag []byte
	Signer          uint32
}

// MarshalMLS encodes t.
func (t *GroupInfoTBS) MarshalMLS(w *codec.Writer) {
	t.GroupContext.MarshalMLS(w)
	writeExtensions(w, t.Extensions)
	w.VarBytes(t.ConfirmationTag)
	w.Uint32(t.Signer)
}

// UnmarshalMLS decodes a GroupInfoTBS.
func (t *GroupInfoTBS) UnmarshalMLS(r *codec.Reader) {
	*t = GroupInfoTBS{}
	t.GroupContext.UnmarshalMLS(r)
	t.Extensions = readExtensions(r)
	t.ConfirmationTag = r.VarBytes()
	t.Signer = r.Uint32()
}
