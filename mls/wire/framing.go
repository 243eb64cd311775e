package wire

import "github.com/mlsengine/mlsengine/mls/codec"

// Sender identifies who sent a FramedContent (§6).
//
//	struct {
//	    SenderType sender_type;
//	    select (Sender.sender_type) {
//	        case member:
//	            uint32 leaf_index;
//	        case external:
//	            uint32 sender_index;
//	        case new_member_commit:
//	        case new_member_proposal:
//	            struct{};
//	    };
//	} Sender;
type Sender struct {
	SenderType  SenderType
	LeafIndex   uint32 // member
	SenderIndex uint32 // external: index into the external_senders extension
}

// MarshalMLS encodes s.
func (s *Sender) MarshalMLS(w *codec.Writer) {
	w.Uint8(uint8(s.SenderType))
	switch s.SenderType {
	case SenderTypeMember:
		w.Uint32(s.LeafIndex)
	case SenderTypeExternal:
		w.Uint32(s.SenderIndex)
	}
}

// UnmarshalMLS decodes a Sender.
func (s *Sender) UnmarshalMLS(r *codec.Reader) {
	*s = Sender{SenderType: SenderType(r.Uint8())}
	switch s.SenderType {
	case SenderTypeMember:
		s.LeafIndex = r.Uint32()
	case SenderTypeExternal:
		s.SenderIndex = r.Uint32()
	case SenderTypeNewMemberProposal, SenderTypeNewMemberCommit:
	default:
		unknown(r, "sender type", s.SenderType)
	}
}

// signsGroupContext reports whether the FramedContentTBS of a message from
// a sender of type t includes the GroupContext (§6.1).
func (t SenderType) signsGroupContext() bool {
	return t == SenderTypeMember || t == SenderTypeNewMemberCommit
}

// writeContentBody encodes the select on content_type shared by
// FramedContent and PrivateMessageContent (§6, §6.3.1).
func writeContentBody(w *codec.Writer, ct ContentType, app []byte, p *Proposal, c *Commit) {
	switch ct {
	case ContentTypeApplication:
		w.VarBytes(app)
	case ContentTypeProposal:
		orZero(p).MarshalMLS(w)
	case ContentTypeCommit:
		orZero(c).MarshalMLS(w)
	}
}

// readContentBody decodes the select on content_type shared by
// FramedContent and PrivateMessageContent.
func readContentBody(r *codec.Reader, ct ContentType) (app []byte, p *Proposal, c *Commit) {
	switch ct {
	case ContentTypeApplication:
		app = r.VarBytes()
	case ContentTypeProposal:
		p = new(Proposal)
		p.UnmarshalMLS(r)
	case ContentTypeCommit:
		c = new(Commit)
		c.UnmarshalMLS(r)
	default:
		unknown(r, "content type", ct)
	}
	return app, p, c
}

// readContentType decodes a ContentType, rejecting reserved(0) and unknown
// values: every content type selects a layout somewhere (§6, §6.3.1).
func readContentType(r *codec.Reader) ContentType {
	ct := ContentType(r.Uint8())
	if !ct.valid() {
		unknown(r, "content type", ct)
	}
	return ct
}

// readFramingWireFormat decodes the wire_format of the framing structures
// (AuthenticatedContent, FramedContentTBS, ConfirmedTranscriptHashInput),
// which only public and private messages produce (§6).
func readFramingWireFormat(r *codec.Reader) WireFormat {
	wf := WireFormat(r.Uint16())
	if wf != WireFormatPublicMessage && wf != WireFormatPrivateMessage {
		unknown(r, "framing wire format", wf)
	}
	return wf
}

// readVersion decodes a ProtocolVersion fixed to mls10.
func readVersion(r *codec.Reader, field string) ProtocolVersion {
	v := ProtocolVersion(r.Uint16())
	if v != ProtocolVersionMLS10 {
		unknown(r, field, v)
	}
	return v
}

// FramedContent is the content of a handshake or application message with
// its sender and group (§6). Exactly one of ApplicationData, Proposal and
// Commit is used, as ContentType selects.
//
//	struct {
//	    opaque group_id<V>;
//	    uint64 epoch;
//	    Sender sender;
//	    opaque authenticated_data<V>;
//
//	    ContentType content_type;
//	    select (FramedContent.content_type) {
//	        case application:
//	          opaque application_data<V>;
//	        case proposal:
//	          Proposal proposal;
//	        case commit:
//	          Commit commit;
//	    };
//	} FramedContent;
type FramedContent struct {
	GroupID           []byte
	Epoch             uint64
	Sender            Sender
	AuthenticatedData []byte
	ContentType       ContentType
	ApplicationData   []byte    // application
	Proposal          *Proposal // proposal
	Commit            *Commit   // commit
}

// MarshalMLS encodes fc.
func (fc *FramedContent) MarshalMLS(w *codec.Writer) {
	w.VarBytes(fc.GroupID)
	w.Uint64(fc.Epoch)
	fc.Sender.MarshalMLS(w)
	w.VarBytes(fc.AuthenticatedData)
	w.Uint8(uint8(fc.ContentType))
	writeContentBody(w, fc.ContentType, fc.ApplicationData, fc.Proposal, fc.Commit)
}

// UnmarshalMLS decodes a FramedContent.
func (fc *FramedContent) UnmarshalMLS(r *codec.Reader) {
	*fc = FramedContent{GroupID: r.VarBytes(), Epoch: r.Uint64()}
	fc.Sender.UnmarshalMLS(r)
	fc.AuthenticatedData = r.VarBytes()
	fc.ContentType = ContentType(r.Uint8())
	fc.ApplicationData, fc.Proposal, fc.Commit = readContentBody(r, fc.ContentType)
}

// FramedContentAuthData authenticates a FramedContent (§6.1). Whether the
// confirmation_tag is on the wire depends on the content type of the
// enclosing message, which the ContentType field carries: it is not encoded
// and UnmarshalMLS keeps it. Enclosing structures (AuthenticatedContent,
// PublicMessage, PrivateMessageContent, AuthenticatedContentTBM) use their
// own content type instead, and set ContentType when decoding.
//
//	struct {
//	    /* SignWithLabel(., "FramedContentTBS", FramedContentTBS) */
//	    opaque signature<V>;
//	    select (FramedContent.content_type) {
//	        case commit:
//	            /*
//	              MAC(confirmation_key,
//	                  GroupContext.confirmed_transcript_hash)
//	            */
//	            MAC confirmation_tag;
//	        case application:
//	        case proposal:
//	            struct{};
//	    };
//	} FramedContentAuthData;
type FramedContentAuthData struct {
	ContentType     ContentType // not encoded: the enclosing content's type
	Signature       []byte
	ConfirmationTag []byte // commit
}

// MarshalMLS encodes a as the auth data of content of type a.ContentType.
func (a *FramedContentAuthData) MarshalMLS(w *codec.Writer) { a.marshal(w, a.ContentType) }

// UnmarshalMLS decodes a FramedContentAuthData for content of type
// a.ContentType, which it keeps; every other field is reset.
func (a *FramedContentAuthData) UnmarshalMLS(r *codec.Reader) { a.unmarshal(r, a.ContentType) }

func (a *FramedContentAuthData) marshal(w *codec.Writer, ct ContentType) {
	w.VarBytes(a.Signature)
	if ct == ContentTypeCommit {
		w.VarBytes(a.ConfirmationTag)
	}
}

func (a *FramedContentAuthData) unmarshal(r *codec.Reader, ct ContentType) {
	*a = FramedContentAuthData{ContentType: ct, Signature: r.VarBytes()}
	switch ct {
	case ContentTypeCommit:
		a.ConfirmationTag = r.VarBytes()
	case ContentTypeApplication, ContentTypeProposal:
	default:
		unknown(r, "content type", ct)
	}
}

// FramedContentTBS is the content the signature in FramedContentAuthData
// covers (§6.1). Context is encoded only for the member and
// new_member_commit sender types; NewFramedContentTBS sets it accordingly.
//
//	struct {
//	    ProtocolVersion version = mls10;
//	    WireFormat wire_format;
//	    FramedContent content;
//	    select (FramedContentTBS.content.sender.sender_type) {
//	        case member:
//	        case new_member_commit:
//	            GroupContext context;
//	        case external:
//	        case new_member_proposal:
//	            struct{};
//	    };
//	} FramedContentTBS;
type FramedContentTBS struct {
	Version    ProtocolVersion
	WireFormat WireFormat
	Content    FramedContent
	Context    *GroupContext // member, new_member_commit
}

// NewFramedContentTBS returns the FramedContentTBS of content sent with wire
// format wf in the epoch described by gc. gc is kept only if the sender type
// requires it, and may be nil otherwise. The content is copied shallowly.
func NewFramedContentTBS(wf WireFormat, content *FramedContent, gc *GroupContext) *FramedContentTBS {
	t := &FramedContentTBS{Version: ProtocolVersionMLS10, WireFormat: wf, Content: *content}
	if content.Sender.SenderType.signsGroupContext() {
		t.Context = gc
	}
	return t
}

// MarshalMLS encodes t.
func (t *FramedContentTBS) MarshalMLS(w *codec.Writer) {
	w.Uint16(uint16(t.Version))
	w.Uint16(uint16(t.WireFormat))
	t.Content.MarshalMLS(w)
	if t.Content.Sender.SenderType.signsGroupContext() {
		orZero(t.Context).MarshalMLS(w)
	}
}

// UnmarshalMLS decodes a FramedContentTBS.
func (t *FramedContentTBS) UnmarshalMLS(r *codec.Reader) {
	*t = FramedContentTBS{Version: readVersion(r, "version"), WireFormat: readFramingWireFormat(r)}
	t.Content.UnmarshalMLS(r)
	if t.Content.Sender.SenderType.signsGroupContext() {
		t.Context = new(GroupContext)
		t.Context.UnmarshalMLS(r)
	}
}

// Bytes returns the encoding of t, the content signed with label
// "FramedContentTBS". It is nil only if a vector exceeds 2^30-1 bytes.
func (t *FramedContentTBS) Bytes() []byte { return encode(t) }

// AuthenticatedContent is a FramedContent with its authentication, the unit
// that transcript hashes and proposal references cover (§6).
//
//	struct {
//	    WireFormat wire_format;
//	    FramedContent content;
//	    FramedContentAuthData auth;
//	} AuthenticatedContent;
type AuthenticatedContent struct {
	WireFormat WireFormat
	Content    FramedContent
	Auth       FramedContentAuthData
}

// MarshalMLS encodes ac.
func (ac *AuthenticatedContent) MarshalMLS(w *codec.Writer) {
	w.Uint16(uint16(ac.WireFormat))
	ac.Content.MarshalMLS(w)
	ac.Auth.marshal(w, ac.Content.ContentType)
}

// UnmarshalMLS decodes an AuthenticatedContent.
func (ac *AuthenticatedContent) UnmarshalMLS(r *codec.Reader) {
	*ac = AuthenticatedContent{WireFormat: readFramingWireFormat(r)}
	ac.Content.UnmarshalMLS(r)
	ac.Auth.unmarshal(r, ac.Content.ContentType)
}

// Bytes returns the encoding of ac, the value a ProposalRef hashes (§5.2).
func (ac *AuthenticatedContent) Bytes() []byte { return encode(ac) }

// TBS returns the FramedContentTBS that ac's signature covers in the epoch
// described by gc (§6.1).
func (ac *AuthenticatedContent) TBS(gc *GroupContext) *FramedContentTBS {
	return NewFramedContentTBS(ac.WireFormat, &ac.Content, gc)
}

// ConfirmedTranscriptHashInput returns the part of ac that the confirmed
// transcript hash covers (§8.2).
func (ac *AuthenticatedContent) ConfirmedTranscriptHashInput() *ConfirmedTranscriptHashInput {
	return &ConfirmedTranscriptHashInput{WireFormat: ac.WireFormat, Content: ac.Content, Signature: ac.Auth.Signature}
}

// InterimTranscriptHashInput returns the part of ac that the interim
// transcript hash covers (§8.2).
func (ac *AuthenticatedContent) InterimTranscriptHashInput() *InterimTranscriptHashInput {
	return &InterimTranscriptHashInput{ConfirmationTag: ac.Auth.ConfirmationTag}
}

// AuthenticatedContentTBM is the input of a PublicMessage's membership_tag
// (§6.2).
//
//	struct {
//	  FramedContentTBS content_tbs;
//	  FramedContentAuthData auth;
//	} AuthenticatedContentTBM;
type AuthenticatedContentTBM struct {
	ContentTBS FramedContentTBS
	Auth       FramedContentAuthData
}

// MarshalMLS encodes t.
func (t *AuthenticatedContentTBM) MarshalMLS(w *codec.Writer) {
	t.ContentTBS.MarshalMLS(w)
	t.Auth.marshal(w, t.ContentTBS.Content.ContentType)
}

// UnmarshalMLS decodes an AuthenticatedContentTBM.
func (t *AuthenticatedContentTBM) UnmarshalMLS(r *codec.Reader) {
	*t = AuthenticatedContentTBM{}
	t.ContentTBS.UnmarshalMLS(r)
	t.Auth.unmarshal(r, t.ContentTBS.Content.ContentType)
}

// Bytes returns the encoding of t, the MAC input of membership_tag.
func (t *AuthenticatedContentTBM) Bytes() []byte { return encode(t) }

// ConfirmedTranscriptHashInput is the part of a commit's
// AuthenticatedContent that the confirmed transcript hash covers (§8.2).
//
//	struct {
//	    WireFormat wire_format;
//	    FramedContent content; /* with content_type == commit */
//	    opaque signature<V>;
//	} ConfirmedTranscriptHashInput;
type ConfirmedTranscriptHashInput struct {
	WireFormat WireFormat
	Content    FramedContent
	Signature  []byte
}

// MarshalMLS encodes in.
func (in *ConfirmedTranscriptHashInput) MarshalMLS(w *codec.Writer) {
	w.Uint16(uint16(in.WireFormat))
	in.Content.MarshalMLS(w)
	w.VarBytes(in.Signature)
}

// UnmarshalMLS decodes a ConfirmedTranscriptHashInput.
func (in *ConfirmedTranscriptHashInput) UnmarshalMLS(r *codec.Reader) {
	*in = ConfirmedTranscriptHashInput{WireFormat: readFramingWireFormat(r)}
	in.Content.UnmarshalMLS(r)
	in.Signature = r.VarBytes()
}

// Bytes returns the encoding of in.
func (in *ConfirmedTranscriptHashInput) Bytes() []byte { return encode(in) }

// InterimTranscriptHashInput is the part of a commit that the interim
// transcript hash covers (§8.2).
//
//	struct {
//	    MAC confirmation_tag;
//	} InterimTranscriptHashInput;
type InterimTranscriptHashInput struct {
	ConfirmationTag []byte
}

// MarshalMLS encodes in.
func (in *InterimTranscriptHashInput) MarshalMLS(w *codec.Writer) { w.VarBytes(in.ConfirmationTag) }

// UnmarshalMLS decodes an InterimTranscriptHashInput.
func (in *InterimTranscriptHashInput) UnmarshalMLS(r *codec.Reader) {
	*in = InterimTranscriptHashInput{ConfirmationTag: r.VarBytes()}
}

// Bytes returns the encoding of in.
func (in *InterimTranscriptHashInput) Bytes() []byte { return encode(in) }

// PublicMessage is a signed, unencrypted message (§6.2). MembershipTag is
// present only when the sender is a member.
//
//	struct {
//	    FramedContent content;
//	    FramedContentAuthData auth;
//	    select (PublicMessage.content.sender.sender_type) {
//	        case member:
//	            MAC membership_tag;
//	        case external:
//	        case new_member_commit:
//	        case new_member_proposal:
//	            struct{};
//	    };
//	} PublicMessage;
type PublicMessage struct {
	Content       FramedContent
	Auth          FramedContentAuthData
	MembershipTag []byte // member
}

// MarshalMLS encodes pm.
func (pm *PublicMessage) MarshalMLS(w *codec.Writer) {
	pm.Content.MarshalMLS(w)
	pm.Auth.marshal(w, pm.Content.ContentType)
	if pm.Content.Sender.SenderType == SenderTypeMember {
		w.VarBytes(pm.MembershipTag)
	}
}

// UnmarshalMLS decodes a PublicMessage.
func (pm *PublicMessage) UnmarshalMLS(r *codec.Reader) {
	*pm = PublicMessage{}
	pm.Content.UnmarshalMLS(r)
	pm.Auth.unmarshal(r, pm.Content.ContentType)
	if pm.Content.Sender.SenderType == SenderTypeMember {
		pm.MembershipTag = r.VarBytes()
	}
}

// AuthenticatedContent returns the AuthenticatedContent pm carries, with
// wire format mls_public_message. It shares pm's slices.
func (pm *PublicMessage) AuthenticatedContent() *AuthenticatedContent {
	return &AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: pm.Content, Auth: pm.Auth}
}

// TBM returns the AuthenticatedContentTBM that pm's membership_tag covers
// in the epoch described by gc (§6.2).
func (pm *PublicMessage) TBM(gc *GroupContext) *AuthenticatedContentTBM {
	return &AuthenticatedContentTBM{
		ContentTBS: *NewFramedContentTBS(WireFormatPublicMessage, &pm.Content, gc),
		Auth:       pm.Auth,
	}
}
