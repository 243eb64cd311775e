package wire

import (
	"fmt"

	"github.com/mlsengine/mlsengine/mls/codec"
)

// ErrUnexpectedWireFormat is returned by the UnmarshalMLS<Kind> functions
// when the message carries a different kind. It matches codec.ErrMalformed.
var ErrUnexpectedWireFormat = fmt.Errorf("%w: unexpected wire format", codec.ErrMalformed)

// MLSMessage is the outer structure of every message sent over the wire
// (§6). The pointer field that WireFormat selects holds the body.
//
//	struct {
//	    ProtocolVersion version = mls10;
//	    WireFormat wire_format;
//	    select (MLSMessage.wire_format) {
//	        case mls_public_message:
//	            PublicMessage public_message;
//	        case mls_private_message:
//	            PrivateMessage private_message;
//	        case mls_welcome:
//	            Welcome welcome;
//	        case mls_group_info:
//	            GroupInfo group_info;
//	        case mls_key_package:
//	            KeyPackage key_package;
//	    };
//	} MLSMessage;
type MLSMessage struct {
	Version        ProtocolVersion
	WireFormat     WireFormat
	PublicMessage  *PublicMessage  // mls_public_message
	PrivateMessage *PrivateMessage // mls_private_message
	Welcome        *Welcome        // mls_welcome
	GroupInfo      *GroupInfo      // mls_group_info
	KeyPackage     *KeyPackage     // mls_key_package
}

// MarshalMLS encodes m. An unknown WireFormat encodes no body.
func (m *MLSMessage) MarshalMLS(w *codec.Writer) {
	w.Uint16(uint16(m.Version))
	w.Uint16(uint16(m.WireFormat))
	switch m.WireFormat {
	case WireFormatPublicMessage:
		orZero(m.PublicMessage).MarshalMLS(w)
	case WireFormatPrivateMessage:
		orZero(m.PrivateMessage).MarshalMLS(w)
	case WireFormatWelcome:
		orZero(m.Welcome).MarshalMLS(w)
	case WireFormatGroupInfo:
		orZero(m.GroupInfo).MarshalMLS(w)
	case WireFormatKeyPackage:
		orZero(m.KeyPackage).MarshalMLS(w)
	}
}

// UnmarshalMLS decodes an MLSMessage. The version must be mls10; so must
// a carried KeyPackage's, as §10 requires them to agree.
func (m *MLSMessage) UnmarshalMLS(r *codec.Reader) {
	*m = MLSMessage{Version: readVersion(r, "version"), WireFormat: WireFormat(r.Uint16())}
	switch m.WireFormat {
	case WireFormatPublicMessage:
		m.PublicMessage = new(PublicMessage)
		m.PublicMessage.UnmarshalMLS(r)
	case WireFormatPrivateMessage:
		m.PrivateMessage = new(PrivateMessage)
		m.PrivateMessage.UnmarshalMLS(r)
	case WireFormatWelcome:
		m.Welcome = new(Welcome)
		m.Welcome.UnmarshalMLS(r)
	case WireFormatGroupInfo:
		m.GroupInfo = new(GroupInfo)
		m.GroupInfo.UnmarshalMLS(r)
	case WireFormatKeyPackage:
		m.KeyPackage = new(KeyPackage)
		m.KeyPackage.UnmarshalMLS(r)
	default:
		unknown(r, "wire format", m.WireFormat)
	}
}

// Bytes returns the encoding of m, or nil if a vector exceeds 2^30-1 bytes
// (use Marshal to get the error).
func (m *MLSMessage) Bytes() []byte { return encode(m) }

// UnmarshalMLSMessage decodes exactly one MLSMessage from b.
func UnmarshalMLSMessage(b []byte) (*MLSMessage, error) { return Unmarshal[MLSMessage](b) }

func unmarshalAs[T any](b []byte, wf WireFormat, get func(*MLSMessage) *T) (*T, error) {
	m, err := UnmarshalMLSMessage(b)
	if err != nil {
		return nil, err
	}
	if m.WireFormat != wf {
		return nil, fmt.Errorf("%w: %v, want %v", ErrUnexpectedWireFormat, m.WireFormat, wf)
	}
	return get(m), nil
}

// UnmarshalMLSPublicMessage decodes an MLSMessage that must carry a
// PublicMessage.
func UnmarshalMLSPublicMessage(b []byte) (*PublicMessage, error) {
	return unmarshalAs(b, WireFormatPublicMessage, func(m *MLSMessage) *PublicMessage { return m.PublicMessage })
}

// UnmarshalMLSPrivateMessage decodes an MLSMessage that must carry a
// PrivateMessage.
func UnmarshalMLSPrivateMessage(b []byte) (*PrivateMessage, error) {
	return unmarshalAs(b, WireFormatPrivateMessage, func(m *MLSMessage) *PrivateMessage { return m.PrivateMessage })
}

// UnmarshalMLSWelcome decodes an MLSMessage that must carry a Welcome.
func UnmarshalMLSWelcome(b []byte) (*Welcome, error) {
	return unmarshalAs(b, WireFormatWelcome, func(m *MLSMessage) *Welcome { return m.Welcome })
}

// UnmarshalMLSGroupInfo decodes an MLSMessage that must carry a GroupInfo.
func UnmarshalMLSGroupInfo(b []byte) (*GroupInfo, error) {
	return unmarshalAs(b, WireFormatGroupInfo, func(m *MLSMessage) *GroupInfo { return m.GroupInfo })
}

// UnmarshalMLSKeyPackage decodes an MLSMessage that must carry a
// KeyPackage.
func UnmarshalMLSKeyPackage(b []byte) (*KeyPackage, error) {
	return unmarshalAs(b, WireFormatKeyPackage, func(m *MLSMessage) *KeyPackage { return m.KeyPackage })
}

// WrapPublicMessage returns an mls10 MLSMessage carrying pm.
func WrapPublicMessage(pm *PublicMessage) *MLSMessage {
	return &MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatPublicMessage, PublicMessage: pm}
}

// WrapPrivateMessage returns an mls10 MLSMessage carrying pm.
func WrapPrivateMessage(pm *PrivateMessage) *MLSMessage {
	return &MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatPrivateMessage, PrivateMessage: pm}
}

// WrapWelcome returns an mls10 MLSMessage carrying wm.
func WrapWelcome(wm *Welcome) *MLSMessage {
	return &MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatWelcome, Welcome: wm}
}

// WrapGroupInfo returns an mls10 MLSMessage carrying gi.
func WrapGroupInfo(gi *GroupInfo) *MLSMessage {
	return &MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatGroupInfo, GroupInfo: gi}
}

// WrapKeyPackage returns an mls10 MLSMessage carrying kp.
func WrapKeyPackage(kp *KeyPackage) *MLSMessage {
	return &MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatKeyPackage, KeyPackage: kp}
}

// PrivateMessage is a signed and encrypted message (§6.3).
//
//	struct {
//	    opaque group_id<V>;
//	    uint64 epoch;
//	    ContentType content_type;
//	    opaque authenticated_data<V>;
//	    opaque encrypted_sender_data<V>;
//	    opaque ciphertext<V>;
//	} PrivateMessage;
type PrivateMessage struct {
	GroupID             []byte
	Epoch               uint64
	ContentType         ContentType
	AuthenticatedData   []byte
	EncryptedSenderData []byte
	Ciphertext          []byte
}

// MarshalMLS encodes pm.
func (pm *PrivateMessage) MarshalMLS(w *codec.Writer) {
	w.VarBytes(pm.GroupID)
	w.Uint64(pm.Epoch)
	w.Uint8(uint8(pm.ContentType))
	w.VarBytes(pm.AuthenticatedData)
	w.VarBytes(pm.EncryptedSenderData)
	w.VarBytes(pm.Ciphertext)
}

// UnmarshalMLS decodes a PrivateMessage. The content type must be known:
// it selects the layout of the plaintext.
func (pm *PrivateMessage) UnmarshalMLS(r *codec.Reader) {
	*pm = PrivateMessage{
		GroupID:             r.VarBytes(),
		Epoch:               r.Uint64(),
		ContentType:         readContentType(r),
		AuthenticatedData:   r.VarBytes(),
		EncryptedSenderData: r.VarBytes(),
		Ciphertext:          r.VarBytes(),
	}
}

// SenderDataAAD returns the AAD of pm's sender data encryption (§6.3.2).
func (pm *PrivateMessage) SenderDataAAD() *SenderDataAAD {
	return &SenderDataAAD{GroupID: pm.GroupID, Epoch: pm.Epoch, ContentType: pm.ContentType}
}

// ContentAAD returns the AAD of pm's content encryption (§6.3.1).
func (pm *PrivateMessage) ContentAAD() *PrivateContentAAD {
	return &PrivateContentAAD{
		GroupID:           pm.GroupID,
		Epoch:             pm.Epoch,
		ContentType:       pm.ContentType,
		AuthenticatedData: pm.AuthenticatedData,
	}
}

// PrivateMessageContent is the plaintext of PrivateMessage.ciphertext
// (§6.3.1). ContentType is PrivateMessage.content_type: it is not encoded,
// selects the layout, and is kept by UnmarshalMLS. The padding is
// PaddingLength zero bytes; on decoding it is the rest of the plaintext, and
// a non-zero byte there is an error (ErrBadPadding).
//
//	struct {
//	    select (PrivateMessage.content_type) {
//	        case application:
//	          opaque application_data<V>;
//
//	        case proposal:
//	          Proposal proposal;
//
//	        case commit:
//	          Commit commit;
//	    };
//
//	    FramedContentAuthData auth;
//	    opaque padding[length_of_padding];
//	} PrivateMessageContent;
type PrivateMessageContent struct {
	ContentType     ContentType // not encoded: PrivateMessage.content_type
	ApplicationData []byte      // application
	Proposal        *Proposal   // proposal
	Commit          *Commit     // commit
	Auth            FramedContentAuthData
	PaddingLength   int // number of zero bytes after auth
}

// MarshalMLS encodes c with c.PaddingLength zero bytes of padding.
func (c *PrivateMessageContent) MarshalMLS(w *codec.Writer) {
	writeContentBody(w, c.ContentType, c.ApplicationData, c.Proposal, c.Commit)
	c.Auth.marshal(w, c.ContentType)
	if c.PaddingLength > 0 {
		w.Raw(make([]byte, c.PaddingLength))
	}
}

// UnmarshalMLS decodes a PrivateMessageContent of type c.ContentType. It
// consumes all of r: the padding is whatever follows auth (§6.3.1).
func (c *PrivateMessageContent) UnmarshalMLS(r *codec.Reader) {
	ct := c.ContentType
	*c = PrivateMessageContent{ContentType: ct}
	c.ApplicationData, c.Proposal, c.Commit = readContentBody(r, ct)
	c.Auth.unmarshal(r, ct)
	if r.Err() != nil {
		return
	}
	n := r.Len()
	var acc uint64
	for r.Len() >= 8 {
		acc |= r.Uint64()
	}
	for r.Len() > 0 {
		acc |= uint64(r.Uint8())
	}
	if acc != 0 {
		r.Fail(ErrBadPadding)
		return
	}
	c.PaddingLength = n
}

// Bytes returns the encoding of c, the plaintext to encrypt.
func (c *PrivateMessageContent) Bytes() []byte { return encode(c) }

// UnmarshalPrivateMessageContent decodes a decrypted PrivateMessage
// plaintext whose PrivateMessage.content_type is ct.
func UnmarshalPrivateMessageContent(b []byte, ct ContentType) (*PrivateMessageContent, error) {
	c := &PrivateMessageContent{ContentType: ct}
	if err := codec.Unmarshal(b, c); err != nil {
		return nil, err
	}
	return c, nil
}

// PrivateContentAAD is the AAD of a PrivateMessage's content encryption
// (§6.3.1).
//
//	struct {
//	    opaque group_id<V>;
//	    uint64 epoch;
//	    ContentType content_type;
//	    opaque authenticated_data<V>;
//	} PrivateContentAAD;
type PrivateContentAAD struct {
	GroupID           []byte
	Epoch             uint64
	ContentType       ContentType
	AuthenticatedData []byte
}

// MarshalMLS encodes a.
func (a *PrivateContentAAD) MarshalMLS(w *codec.Writer) {
	w.VarBytes(a.GroupID)
	w.Uint64(a.Epoch)
	w.Uint8(uint8(a.ContentType))
	w.VarBytes(a.AuthenticatedData)
}

// UnmarshalMLS decodes a PrivateContentAAD.
func (a *PrivateContentAAD) UnmarshalMLS(r *codec.Reader) {
	*a = PrivateContentAAD{
		GroupID:           r.VarBytes(),
		Epoch:             r.Uint64(),
		ContentType:       readContentType(r),
		AuthenticatedData: r.VarBytes(),
	}
}

// Bytes returns the encoding of a.
func (a *PrivateContentAAD) Bytes() []byte { return encode(a) }

// SenderData identifies the sender and key generation of a PrivateMessage;
// it is encrypted into encrypted_sender_data (§6.3.2).
//
//	struct {
//	    uint32 leaf_index;
//	    uint32 generation;
//	    opaque reuse_guard[4];
//	} SenderData;
type SenderData struct {
	LeafIndex  uint32
	Generation uint32
	ReuseGuard [4]byte
}

// MarshalMLS encodes d.
func (d *SenderData) MarshalMLS(w *codec.Writer) {
	w.Uint32(d.LeafIndex)
	w.Uint32(d.Generation)
	w.Raw(d.ReuseGuard[:])
}

// UnmarshalMLS decodes a SenderData.
func (d *SenderData) UnmarshalMLS(r *codec.Reader) {
	*d = SenderData{LeafIndex: r.Uint32(), Generation: r.Uint32()}
	copy(d.ReuseGuard[:], r.Raw(4))
}

// Bytes returns the encoding of d.
func (d *SenderData) Bytes() []byte { return encode(d) }

// SenderDataAAD is the AAD of a PrivateMessage's sender data encryption:
// its first three fields (§6.3.2).
//
//	struct {
//	    opaque group_id<V>;
//	    uint64 epoch;
//	    ContentType content_type;
//	} SenderDataAAD;
type SenderDataAAD struct {
	GroupID     []byte
	Epoch       uint64
	ContentType ContentType
}

// MarshalMLS encodes a.
func (a *SenderDataAAD) MarshalMLS(w *codec.Writer) {
	w.VarBytes(a.GroupID)
	w.Uint64(a.Epoch)
	w.Uint8(uint8(a.ContentType))
}

// UnmarshalMLS decodes a SenderDataAAD.
func (a *SenderDataAAD) UnmarshalMLS(r *codec.Reader) {
	*a = SenderDataAAD{GroupID: r.VarBytes(), Epoch: r.Uint64(), ContentType: readContentType(r)}
}

// Bytes returns the encoding of a.
func (a *SenderDataAAD) Bytes() []byte { return encode(a) }
