package wire

import "fmt"

// ProtocolVersion is an MLS protocol version (§6).
//
//	enum {
//	    reserved(0),
//	    mls10(1),
//	    (65535)
//	} ProtocolVersion;
type ProtocolVersion uint16

// ProtocolVersionMLS10 is the version this package implements.
const ProtocolVersionMLS10 ProtocolVersion = 1

// String returns the RFC name of the value, or the type and number if it
// has none.
func (v ProtocolVersion) String() string {
	if v == ProtocolVersionMLS10 {
		return "mls10"
	}
	return fmt.Sprintf("ProtocolVersion(%d)", uint16(v))
}

// WireFormat identifies the kind of message an MLSMessage carries (§6,
// "MLS Wire Formats" registry, §17.2).
type WireFormat uint16

// The wire formats of RFC 9420.
const (
	WireFormatPublicMessage  WireFormat = 1 // mls_public_message
	WireFormatPrivateMessage WireFormat = 2 // mls_private_message
	WireFormatWelcome        WireFormat = 3 // mls_welcome
	WireFormatGroupInfo      WireFormat = 4 // mls_group_info
	WireFormatKeyPackage     WireFormat = 5 // mls_key_package
)

// String returns the RFC name of the value, or the type and number if it
// has none.
func (f WireFormat) String() string {
	switch f {
	case WireFormatPublicMessage:
		return "mls_public_message"
	case WireFormatPrivateMessage:
		return "mls_private_message"
	case WireFormatWelcome:
		return "mls_welcome"
	case WireFormatGroupInfo:
		return "mls_group_info"
	case WireFormatKeyPackage:
		return "mls_key_package"
	}
	return fmt.Sprintf("WireFormat(%d)", uint16(f))
}

// ContentType is the kind of content a FramedContent carries (§6).
//
//	enum {
//	    reserved(0),
//	    application(1),
//	    proposal(2),
//	    commit(3),
//	    (255)
//	} ContentType;
type ContentType uint8

// The content types of RFC 9420.
const (
	ContentTypeApplication ContentType = 1
	ContentTypeProposal    ContentType = 2
	ContentTypeCommit      ContentType = 3
)

func (t ContentType) valid() bool { return t >= ContentTypeApplication && t <= ContentTypeCommit }

// String returns the RFC name of the value, or the type and number if it
// has none.
func (t ContentType) String() string {
	switch t {
	case ContentTypeApplication:
		return "application"
	case ContentTypeProposal:
		return "proposal"
	case ContentTypeCommit:
		return "commit"
	}
	return fmt.Sprintf("ContentType(%d)", uint8(t))
}

// SenderType is the kind of sender of a FramedContent (§6).
//
//	enum {
//	    reserved(0),
//	    member(1),
//	    external(2),
//	    new_member_proposal(3),
//	    new_member_commit(4),
//	    (255)
//	} SenderType;
type SenderType uint8

// The sender types of RFC 9420.
const (
	SenderTypeMember            SenderType = 1
	SenderTypeExternal          SenderType = 2
	SenderTypeNewMemberProposal SenderType = 3
	SenderTypeNewMemberCommit   SenderType = 4
)

// String returns the RFC name of the value, or the type and number if it
// has none.
func (t SenderType) String() string {
	switch t {
	case SenderTypeMember:
		return "member"
	case SenderTypeExternal:
		return "external"
	case SenderTypeNewMemberProposal:
		return "new_member_proposal"
	case SenderTypeNewMemberCommit:
		return "new_member_commit"
	}
	return fmt.Sprintf("SenderType(%d)", uint8(t))
}

// ProposalType identifies a proposal (§12.1, "MLS Proposal Types"
// registry, §17.4). Types other than the constants below are custom
// proposals.
type ProposalType uint16

// The proposal types of RFC 9420.
const (
	ProposalTypeAdd                    ProposalType = 1
	ProposalTypeUpdate                 ProposalType = 2
	ProposalTypeRemove                 ProposalType = 3
	ProposalTypePSK                    ProposalType = 4
	ProposalTypeReInit                 ProposalType = 5
	ProposalTypeExternalInit           ProposalType = 6
	ProposalTypeGroupContextExtensions ProposalType = 7
)

// String returns the RFC name of the value, or the type and number if it
// has none.
func (t ProposalType) String() string {
	switch t {
	case ProposalTypeAdd:
		return "add"
	case ProposalTypeUpdate:
		return "update"
	case ProposalTypeRemove:
		return "remove"
	case ProposalTypePSK:
		return "psk"
	case ProposalTypeReInit:
		return "reinit"
	case ProposalTypeExternalInit:
		return "external_init"
	case ProposalTypeGroupContextExtensions:
		return "group_context_extensions"
	}
	return fmt.Sprintf("ProposalType(%d)", uint16(t))
}

// ExtensionType identifies an extension (§7.2, "MLS Extension Types"
// registry, §17.3).
type ExtensionType uint16

// The extension types of RFC 9420.
const (
	ExtensionTypeApplicationID        ExtensionType = 1
	ExtensionTypeRatchetTree          ExtensionType = 2
	ExtensionTypeRequiredCapabilities ExtensionType = 3
	ExtensionTypeExternalPub          ExtensionType = 4
	ExtensionTypeExternalSenders      ExtensionType = 5
)

// String returns the RFC name of the value, or the type and number if it
// has none.
func (t ExtensionType) String() string {
	switch t {
	case ExtensionTypeApplicationID:
		return "application_id"
	case ExtensionTypeRatchetTree:
		return "ratchet_tree"
	case ExtensionTypeRequiredCapabilities:
		return "required_capabilities"
	case ExtensionTypeExternalPub:
		return "external_pub"
	case ExtensionTypeExternalSenders:
		return "external_senders"
	}
	return fmt.Sprintf("ExtensionType(%d)", uint16(t))
}

// CredentialType identifies a credential format (§5.3, "MLS Credential
// Types" registry, §17.5).
type CredentialType uint16

// The credential types of RFC 9420.
const (
	CredentialTypeBasic CredentialType = 1
	CredentialTypeX509  CredentialType = 2
)

// String returns the RFC name of the value, or the type and number if it
// has none.
func (t CredentialType) String() string {
	switch t {
	case CredentialTypeBasic:
		return "basic"
	case CredentialTypeX509:
		return "x509"
	}
	return fmt.Sprintf("CredentialType(%d)", uint16(t))
}

// IsGREASE reports whether v is one of the GREASE values reserved in every
// MLS registry (§13.5): 0x0A0A, 0x1A1A, ..., 0xEAEA.
func IsGREASE(v uint16) bool {
	return v&0x0F0F == 0x0A0A && v>>12 == (v>>4)&0xF && v>>12 != 0xF
}

// LeafNodeSource says how a LeafNode entered the tree (§7.2).
//
//	enum {
//	    reserved(0),
//	    key_package(1),
//	    update(2),
//	    commit(3),
//	    (255)
//	} LeafNodeSource;
type LeafNodeSource uint8

// The leaf node sources of RFC 9420.
const (
	LeafNodeSourceKeyPackage LeafNodeSource = 1
	LeafNodeSourceUpdate     LeafNodeSource = 2
	LeafNodeSourceCommit     LeafNodeSource = 3
)

// String returns the RFC name of the value, or the type and number if it
// has none.
func (s LeafNodeSource) String() string {
	switch s {
	case LeafNodeSourceKeyPackage:
		return "key_package"
	case LeafNodeSourceUpdate:
		return "update"
	case LeafNodeSourceCommit:
		return "commit"
	}
	return fmt.Sprintf("LeafNodeSource(%d)", uint8(s))
}

// PSKType says how a pre-shared key was provisioned (§8.4).
//
//	enum {
//	  reserved(0),
//	  external(1),
//	  resumption(2),
//	  (255)
//	} PSKType;
type PSKType uint8

// The PSK types of RFC 9420.
const (
	PSKTypeExternal   PSKType = 1
	PSKTypeResumption PSKType = 2
)

// String returns the RFC name of the value, or the type and number if it
// has none.
func (t PSKType) String() string {
	switch t {
	case PSKTypeExternal:
		return "external"
	case PSKTypeResumption:
		return "resumption"
	}
	return fmt.Sprintf("PSKType(%d)", uint8(t))
}

// ResumptionPSKUsage says what a resumption PSK is used for (§8.4).
//
//	enum {
//	  reserved(0),
//	  application(1),
//	  reinit(2),
//	  branch(3),
//	  (255)
//	} ResumptionPSKUsage;
type ResumptionPSKUsage uint8

// The resumption PSK usages of RFC 9420.
const (
	ResumptionPSKUsageApplication ResumptionPSKUsage = 1
	ResumptionPSKUsageReInit      ResumptionPSKUsage = 2
	ResumptionPSKUsageBranch      ResumptionPSKUsage = 3
)

// String returns the RFC name of the value, or the type and number if it
// has none.
func (u ResumptionPSKUsage) String() string {
	switch u {
	case ResumptionPSKUsageApplication:
		return "application"
	case ResumptionPSKUsageReInit:
		return "reinit"
	case ResumptionPSKUsageBranch:
		return "branch"
	}
	return fmt.Sprintf("ResumptionPSKUsage(%d)", uint8(u))
}

// ProposalOrRefType says whether a Commit carries a proposal by value or by
// reference (§12.4).
//
//	enum {
//	  reserved(0),
//	  proposal(1),
//	  reference(2),
//	  (255)
//	} ProposalOrRefType;
type ProposalOrRefType uint8

// The ProposalOrRef types of RFC 9420.
const (
	ProposalOrRefTypeProposal  ProposalOrRefType = 1
	ProposalOrRefTypeReference ProposalOrRefType = 2
)

// String returns the RFC name of the value, or the type and number if it
// has none.
func (t ProposalOrRefType) String() string {
	switch t {
	case ProposalOrRefTypeProposal:
		return "proposal"
	case ProposalOrRefTypeReference:
		return "reference"
	}
	return fmt.Sprintf("ProposalOrRefType(%d)", uint8(t))
}

// NodeType is the kind of a ratchet tree node (§7.8).
//
//	enum {
//	    reserved(0),
//	    leaf(1),
//	    parent(2),
//	    (255)
//	} NodeType;
type NodeType uint8

// The node types of RFC 9420.
const (
	NodeTypeLeaf   NodeType = 1
	NodeTypeParent NodeType = 2
)

// String returns the RFC name of the value, or the type and number if it
// has none.
func (t NodeType) String() string {
	switch t {
	case NodeTypeLeaf:
		return "leaf"
	case NodeTypeParent:
		return "parent"
	}
	return fmt.Sprintf("NodeType(%d)", uint8(t))
}
