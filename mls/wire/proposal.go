package wire

import "github.com/mlsengine/mlsengine/mls/codec"

// Proposal is a proposed change to the group (§12.1). The pointer field
// that ProposalType selects holds the body. A type this package does not
// know is a custom proposal (§13.2): its body is decoded as opaque<V> into
// Custom, the convention of OpenMLS and mls-rs. The reserved type 0 is
// rejected.
//
//	struct {
//	    ProposalType proposal_type;
//	    select (Proposal.proposal_type) {
//	        case add:                      Add;
//	        case update:                   Update;
//	        case remove:                   Remove;
//	        case psk:                      PreSharedKey;
//	        case reinit:                   ReInit;
//	        case external_init:            ExternalInit;
//	        case group_context_extensions: GroupContextExtensions;
//	    };
//	} Proposal;
type Proposal struct {
	ProposalType           ProposalType
	Add                    *Add
	Update                 *Update
	Remove                 *Remove
	PreSharedKey           *PreSharedKey
	ReInit                 *ReInit
	ExternalInit           *ExternalInit
	GroupContextExtensions *GroupContextExtensions
	Custom                 []byte // any other type: the body, without its length
}

// MarshalMLS encodes p.
func (p *Proposal) MarshalMLS(w *codec.Writer) {
	w.Uint16(uint16(p.ProposalType))
	switch p.ProposalType {
	case ProposalTypeAdd:
		orZero(p.Add).MarshalMLS(w)
	case ProposalTypeUpdate:
		orZero(p.Update).MarshalMLS(w)
	case ProposalTypeRemove:
		orZero(p.Remove).MarshalMLS(w)
	case ProposalTypePSK:
		orZero(p.PreSharedKey).MarshalMLS(w)
	case ProposalTypeReInit:
		orZero(p.ReInit).MarshalMLS(w)
	case ProposalTypeExternalInit:
		orZero(p.ExternalInit).MarshalMLS(w)
	case ProposalTypeGroupContextExtensions:
		orZero(p.GroupContextExtensions).MarshalMLS(w)
	default:
		w.VarBytes(p.Custom)
	}
}

// UnmarshalMLS decodes a Proposal.
func (p *Proposal) UnmarshalMLS(r *codec.Reader) {
	*p = Proposal{ProposalType: ProposalType(r.Uint16())}
	switch p.ProposalType {
	case ProposalTypeAdd:
		p.Add = new(Add)
		p.Add.UnmarshalMLS(r)
	case ProposalTypeUpdate:
		p.Update = new(Update)
		p.Update.UnmarshalMLS(r)
	case ProposalTypeRemove:
		p.Remove = new(Remove)
		p.Remove.UnmarshalMLS(r)
	case ProposalTypePSK:
		p.PreSharedKey = new(PreSharedKey)
		p.PreSharedKey.UnmarshalMLS(r)
	case ProposalTypeReInit:
		p.ReInit = new(ReInit)
		p.ReInit.UnmarshalMLS(r)
	case ProposalTypeExternalInit:
		p.ExternalInit = new(ExternalInit)
		p.ExternalInit.UnmarshalMLS(r)
	case ProposalTypeGroupContextExtensions:
		p.GroupContextExtensions = new(GroupContextExtensions)
		p.GroupContextExtensions.UnmarshalMLS(r)
	case 0:
		unknown(r, "proposal type", p.ProposalType)
	default:
		p.Custom = r.VarBytes()
	}
}

// IsCustom reports whether p is of a type this package does not define.
func (p *Proposal) IsCustom() bool {
	return p.ProposalType < ProposalTypeAdd || p.ProposalType > ProposalTypeGroupContextExtensions
}

// Add proposes adding the client of a KeyPackage (§12.1.1).
//
//	struct {
//	    KeyPackage key_package;
//	} Add;
type Add struct {
	KeyPackage KeyPackage
}

// MarshalMLS encodes a.
func (a *Add) MarshalMLS(w *codec.Writer) { a.KeyPackage.MarshalMLS(w) }

// UnmarshalMLS decodes an Add.
func (a *Add) UnmarshalMLS(r *codec.Reader) { a.KeyPackage.UnmarshalMLS(r) }

// Update proposes replacing the sender's LeafNode (§12.1.2).
//
//	struct {
//	    LeafNode leaf_node;
//	} Update;
type Update struct {
	LeafNode LeafNode
}

// MarshalMLS encodes u.
func (u *Update) MarshalMLS(w *codec.Writer) { u.LeafNode.MarshalMLS(w) }

// UnmarshalMLS decodes an Update.
func (u *Update) UnmarshalMLS(r *codec.Reader) { u.LeafNode.UnmarshalMLS(r) }

// Remove proposes removing the member at leaf index Removed (§12.1.3).
//
//	struct {
//	    uint32 removed;
//	} Remove;
type Remove struct {
	Removed uint32
}

// MarshalMLS encodes rm.
func (rm *Remove) MarshalMLS(w *codec.Writer) { w.Uint32(rm.Removed) }

// UnmarshalMLS decodes a Remove.
func (rm *Remove) UnmarshalMLS(r *codec.Reader) { *rm = Remove{Removed: r.Uint32()} }

// PreSharedKey proposes injecting a PSK into the key schedule (§12.1.4).
//
//	struct {
//	    PreSharedKeyID psk;
//	} PreSharedKey;
type PreSharedKey struct {
	PSK PreSharedKeyID
}

// MarshalMLS encodes p.
func (p *PreSharedKey) MarshalMLS(w *codec.Writer) { p.PSK.MarshalMLS(w) }

// UnmarshalMLS decodes a PreSharedKey.
func (p *PreSharedKey) UnmarshalMLS(r *codec.Reader) { p.PSK.UnmarshalMLS(r) }

// ReInit proposes reinitializing the group with new parameters (§12.1.5).
// Version is not checked on decoding: a ReInit may name a newer version.
//
//	struct {
//	    opaque group_id<V>;
//	    ProtocolVersion version;
//	    CipherSuite cipher_suite;
//	    Extension extensions<V>;
//	} ReInit;
type ReInit struct {
	GroupID     []byte
	Version     ProtocolVersion
	CipherSuite uint16
	Extensions  []Extension
}

// MarshalMLS encodes ri.
func (ri *ReInit) MarshalMLS(w *codec.Writer) {
	w.VarBytes(ri.GroupID)
	w.Uint16(uint16(ri.Version))
	w.Uint16(ri.CipherSuite)
	writeExtensions(w, ri.Extensions)
}

// UnmarshalMLS decodes a ReInit.
func (ri *ReInit) UnmarshalMLS(r *codec.Reader) {
	*ri = ReInit{
		GroupID:     r.VarBytes(),
		Version:     ProtocolVersion(r.Uint16()),
		CipherSuite: r.Uint16(),
		Extensions:  readExtensions(r),
	}
}

// ExternalInit carries the KEM output from which an external joiner and
// the group derive the init secret (§12.1.6, §8.3).
//
//	struct {
//	  opaque kem_output<V>;
//	} ExternalInit;
type ExternalInit struct {
	KEMOutput []byte
}

// MarshalMLS encodes e.
func (e *ExternalInit) MarshalMLS(w *codec.Writer) { w.VarBytes(e.KEMOutput) }

// UnmarshalMLS decodes an ExternalInit.
func (e *ExternalInit) UnmarshalMLS(r *codec.Reader) { *e = ExternalInit{KEMOutput: r.VarBytes()} }

// GroupContextExtensions proposes replacing the GroupContext extensions
// (§12.1.7).
//
//	struct {
//	  Extension extensions<V>;
//	} GroupContextExtensions;
type GroupContextExtensions struct {
	Extensions []Extension
}

// MarshalMLS encodes g.
func (g *GroupContextExtensions) MarshalMLS(w *codec.Writer) { writeExtensions(w, g.Extensions) }

// UnmarshalMLS decodes a GroupContextExtensions.
func (g *GroupContextExtensions) UnmarshalMLS(r *codec.Reader) {
	*g = GroupContextExtensions{Extensions: readExtensions(r)}
}
