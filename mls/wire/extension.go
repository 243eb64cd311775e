package wire

import (
	"fmt"

	"github.com/mlsengine/mlsengine/mls/codec"
)

// Extension is one entry of an extension list (§7.2). Extensions of unknown
// types are kept as they are; the typed accessors below decode the ones RFC
// 9420 defines.
//
//	struct {
//	    ExtensionType extension_type;
//	    opaque extension_data<V>;
//	} Extension;
type Extension struct {
	ExtensionType ExtensionType
	ExtensionData []byte
}

// MarshalMLS encodes e.
func (e *Extension) MarshalMLS(w *codec.Writer) {
	w.Uint16(uint16(e.ExtensionType))
	w.VarBytes(e.ExtensionData)
}

// UnmarshalMLS decodes an Extension.
func (e *Extension) UnmarshalMLS(r *codec.Reader) {
	*e = Extension{ExtensionType: ExtensionType(r.Uint16()), ExtensionData: r.VarBytes()}
}

// writeExtensions encodes Extension extensions<V>.
func writeExtensions(w *codec.Writer, exts []Extension) { writeList(w, exts) }

// readExtensions decodes Extension extensions<V>, rejecting a list that
// names a type twice: "Any field containing a list of extensions MUST NOT
// have more than one extension of any given type" (§13.4).
func readExtensions(r *codec.Reader) []Extension {
	exts := readList[Extension](r)
	if err := CheckExtensions(exts); err != nil {
		r.Fail(err)
		return nil
	}
	return exts
}

// CheckExtensions reports ErrDuplicateExtension if exts names a type twice
// (§13.4). Decoders apply it to every extension list; builders may call it
// before encoding.
func CheckExtensions(exts []Extension) error {
	for i := 1; i < len(exts); i++ {
		for j := range i {
			if exts[i].ExtensionType == exts[j].ExtensionType {
				return fmt.Errorf("%w: %v", ErrDuplicateExtension, exts[i].ExtensionType)
			}
		}
	}
	return nil
}

// FindExtension returns the extension of type t in exts, or nil.
func FindExtension(exts []Extension, t ExtensionType) *Extension {
	for i := range exts {
		if exts[i].ExtensionType == t {
			return &exts[i]
		}
	}
	return nil
}

// NewExtension returns an extension of type t whose extension_data is the
// encoding of v.
func NewExtension(t ExtensionType, v codec.Marshaler) Extension {
	return Extension{ExtensionType: t, ExtensionData: encode(v)}
}

// decodeExtension checks e's type and decodes its extension_data as a T.
func decodeExtension[T any, P interface {
	*T
	codec.Unmarshaler
}](e *Extension, t ExtensionType) (*T, error) {
	if e.ExtensionType != t {
		return nil, fmt.Errorf("%w: %v, want %v", ErrExtensionType, e.ExtensionType, t)
	}
	v, err := Unmarshal[T, P](e.ExtensionData)
	if err != nil {
		return nil, fmt.Errorf("%v extension: %w", t, err)
	}
	return v, nil
}

// ApplicationID is the body of the application_id extension (§5.3.3): an
// application-defined identifier of a client, carried in a LeafNode.
//
//	opaque application_id<V>;
type ApplicationID []byte

// MarshalMLS encodes id.
func (id ApplicationID) MarshalMLS(w *codec.Writer) { w.VarBytes(id) }

// UnmarshalMLS decodes an ApplicationID.
func (id *ApplicationID) UnmarshalMLS(r *codec.Reader) { *id = r.VarBytes() }

// ApplicationIDExtension returns an application_id extension.
func ApplicationIDExtension(id []byte) Extension {
	return NewExtension(ExtensionTypeApplicationID, ApplicationID(id))
}

// ApplicationID decodes an application_id extension.
func (e *Extension) ApplicationID() (ApplicationID, error) {
	v, err := decodeExtension[ApplicationID](e, ExtensionTypeApplicationID)
	if err != nil {
		return nil, err
	}
	return *v, nil
}

// RatchetTreeExtension returns a ratchet_tree extension (§12.4.3.3).
func RatchetTreeExtension(t RatchetTree) Extension {
	return NewExtension(ExtensionTypeRatchetTree, t)
}

// RatchetTree decodes a ratchet_tree extension (§12.4.3.3).
func (e *Extension) RatchetTree() (RatchetTree, error) {
	v, err := decodeExtension[RatchetTree](e, ExtensionTypeRatchetTree)
	if err != nil {
		return nil, err
	}
	return *v, nil
}

// RequiredCapabilities is the body of the required_capabilities
// GroupContext extension (§11.1).
//
//	struct {
//	    ExtensionType extension_types<V>;
//	    ProposalType proposal_types<V>;
//	    CredentialType credential_types<V>;
//	} RequiredCapabilities;
type RequiredCapabilities struct {
	ExtensionTypes  []ExtensionType
	ProposalTypes   []ProposalType
	CredentialTypes []CredentialType
}

// MarshalMLS encodes rc.
func (rc *RequiredCapabilities) MarshalMLS(w *codec.Writer) {
	writeUint16s(w, rc.ExtensionTypes)
	writeUint16s(w, rc.ProposalTypes)
	writeUint16s(w, rc.CredentialTypes)
}

// UnmarshalMLS decodes a RequiredCapabilities.
func (rc *RequiredCapabilities) UnmarshalMLS(r *codec.Reader) {
	*rc = RequiredCapabilities{
		ExtensionTypes:  readUint16s[ExtensionType](r),
		ProposalTypes:   readUint16s[ProposalType](r),
		CredentialTypes: readUint16s[CredentialType](r),
	}
}

// RequiredCapabilitiesExtension returns a required_capabilities extension.
func RequiredCapabilitiesExtension(rc *RequiredCapabilities) Extension {
	return NewExtension(ExtensionTypeRequiredCapabilities, rc)
}

// RequiredCapabilities decodes a required_capabilities extension.
func (e *Extension) RequiredCapabilities() (*RequiredCapabilities, error) {
	return decodeExtension[RequiredCapabilities](e, ExtensionTypeRequiredCapabilities)
}

// ExternalPub is the body of the external_pub GroupInfo extension: the HPKE
// public key external joiners encrypt to (§12.4.3.2).
//
//	struct {
//	    HPKEPublicKey external_pub;
//	} ExternalPub;
type ExternalPub struct {
	ExternalPub []byte
}

// MarshalMLS encodes p.
func (p *ExternalPub) MarshalMLS(w *codec.Writer) { w.VarBytes(p.ExternalPub) }

// UnmarshalMLS decodes an ExternalPub.
func (p *ExternalPub) UnmarshalMLS(r *codec.Reader) { *p = ExternalPub{ExternalPub: r.VarBytes()} }

// ExternalPubExtension returns an external_pub extension.
func ExternalPubExtension(pub []byte) Extension {
	return NewExtension(ExtensionTypeExternalPub, &ExternalPub{ExternalPub: pub})
}

// ExternalPub decodes an external_pub extension.
func (e *Extension) ExternalPub() (*ExternalPub, error) {
	return decodeExtension[ExternalPub](e, ExtensionTypeExternalPub)
}

// ExternalSender is a party allowed to send external proposals
// (§12.1.8.1).
//
//	struct {
//	  SignaturePublicKey signature_key;
//	  Credential credential;
//	} ExternalSender;
type ExternalSender struct {
	SignatureKey []byte
	Credential   Credential
}

// MarshalMLS encodes s.
func (s *ExternalSender) MarshalMLS(w *codec.Writer) {
	w.VarBytes(s.SignatureKey)
	s.Credential.MarshalMLS(w)
}

// UnmarshalMLS decodes an ExternalSender.
func (s *ExternalSender) UnmarshalMLS(r *codec.Reader) {
	*s = ExternalSender{SignatureKey: r.VarBytes()}
	s.Credential.UnmarshalMLS(r)
}

// ExternalSenders is the body of the external_senders GroupContext
// extension (§12.1.8.1); an external sender's sender_index indexes it.
//
//	ExternalSender external_senders<V>;
type ExternalSenders []ExternalSender

// MarshalMLS encodes s.
func (s ExternalSenders) MarshalMLS(w *codec.Writer) { writeList(w, s) }

// UnmarshalMLS decodes an ExternalSenders list.
func (s *ExternalSenders) UnmarshalMLS(r *codec.Reader) { *s = readList[ExternalSender](r) }

// ExternalSendersExtension returns an external_senders extension.
func ExternalSendersExtension(s ExternalSenders) Extension {
	return NewExtension(ExtensionTypeExternalSenders, s)
}

// ExternalSenders decodes an external_senders extension.
func (e *Extension) ExternalSenders() (ExternalSenders, error) {
	v, err := decodeExtension[ExternalSenders](e, ExtensionTypeExternalSenders)
	if err != nil {
		return nil, err
	}
	return *v, nil
}
