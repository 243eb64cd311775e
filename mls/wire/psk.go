package wire

import "github.com/mlsengine/mlsengine/mls/codec"

// PreSharedKeyID names a pre-shared key and carries the nonce that makes
// each injection distinct (§8.4). PSKID is set for external PSKs; Usage,
// PSKGroupID and PSKEpoch for resumption PSKs.
//
//	struct {
//	  PSKType psktype;
//	  select (PreSharedKeyID.psktype) {
//	    case external:
//	      opaque psk_id<V>;
//
//	    case resumption:
//	      ResumptionPSKUsage usage;
//	      opaque psk_group_id<V>;
//	      uint64 psk_epoch;
//	  };
//	  opaque psk_nonce<V>;
//	} PreSharedKeyID;
type PreSharedKeyID struct {
	PSKType    PSKType
	PSKID      []byte             // external
	Usage      ResumptionPSKUsage // resumption
	PSKGroupID []byte             // resumption
	PSKEpoch   uint64             // resumption
	PSKNonce   []byte
}

// MarshalMLS encodes id.
func (id *PreSharedKeyID) MarshalMLS(w *codec.Writer) {
	w.Uint8(uint8(id.PSKType))
	switch id.PSKType {
	case PSKTypeExternal:
		w.VarBytes(id.PSKID)
	case PSKTypeResumption:
		w.Uint8(uint8(id.Usage))
		w.VarBytes(id.PSKGroupID)
		w.Uint64(id.PSKEpoch)
	}
	w.VarBytes(id.PSKNonce)
}

// UnmarshalMLS decodes a PreSharedKeyID.
func (id *PreSharedKeyID) UnmarshalMLS(r *codec.Reader) {
	*id = PreSharedKeyID{PSKType: PSKType(r.Uint8())}
	switch id.PSKType {
	case PSKTypeExternal:
		id.PSKID = r.VarBytes()
	case PSKTypeResumption:
		id.Usage = ResumptionPSKUsage(r.Uint8())
		if id.Usage < ResumptionPSKUsageApplication || id.Usage > ResumptionPSKUsageBranch {
			unknown(r, "resumption PSK usage", id.Usage)
		}
		id.PSKGroupID = r.VarBytes()
		id.PSKEpoch = r.Uint64()
	default:
		unknown(r, "PSK type", id.PSKType)
	}
	id.PSKNonce = r.VarBytes()
}

// PSKLabel is the context under which each PSK is expanded into the PSK
// secret (§8.4).
//
//	struct {
//	    PreSharedKeyID id;
//	    uint16 index;
//	    uint16 count;
//	} PSKLabel;
type PSKLabel struct {
	ID    PreSharedKeyID
	Index uint16
	Count uint16
}

// MarshalMLS encodes l.
func (l *PSKLabel) MarshalMLS(w *codec.Writer) {
	l.ID.MarshalMLS(w)
	w.Uint16(l.Index)
	w.Uint16(l.Count)
}

// UnmarshalMLS decodes a PSKLabel.
func (l *PSKLabel) UnmarshalMLS(r *codec.Reader) {
	*l = PSKLabel{}
	l.ID.UnmarshalMLS(r)
	l.Index = r.Uint16()
	l.Count = r.Uint16()
}

// Bytes returns the encoding of l.
func (l *PSKLabel) Bytes() []byte { return encode(l) }
