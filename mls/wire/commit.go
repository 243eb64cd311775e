package wire

import "github.com/mlsengine/mlsengine/mls/codec"

// ProposalOrRef is a proposal covered by a Commit, either inline or by its
// ProposalRef (§12.4).
//
//	struct {
//	  ProposalOrRefType type;
//	  select (ProposalOrRef.type) {
//	    case proposal:  Proposal proposal;
//	    case reference: ProposalRef reference;
//	  };
//	} ProposalOrRef;
type ProposalOrRef struct {
	Type      ProposalOrRefType
	Proposal  *Proposal // proposal
	Reference []byte    // reference: a ProposalRef (§5.2)
}

// MarshalMLS encodes p.
func (p *ProposalOrRef) MarshalMLS(w *codec.Writer) {
	w.Uint8(uint8(p.Type))
	switch p.Type {
	case ProposalOrRefTypeProposal:
		orZero(p.Proposal).MarshalMLS(w)
	case ProposalOrRefTypeReference:
		w.VarBytes(p.Reference)
	}
}

// UnmarshalMLS decodes a ProposalOrRef.
func (p *ProposalOrRef) UnmarshalMLS(r *codec.Reader) {
	*p = ProposalOrRef{Type: ProposalOrRefType(r.Uint8())}
	switch p.Type {
	case ProposalOrRefTypeProposal:
		p.Proposal = new(Proposal)
		p.Proposal.UnmarshalMLS(r)
	case ProposalOrRefTypeReference:
		p.Reference = r.VarBytes()
	default:
		unknown(r, "ProposalOrRef type", p.Type)
	}
}

// Commit moves the group to a new epoch by applying proposals and,
// optionally, refreshing the committer's path (§12.4).
//
//	struct {
//	    ProposalOrRef proposals<V>;
//	    optional<UpdatePath> path;
//	} Commit;
type Commit struct {
	Proposals []ProposalOrRef
	Path      *UpdatePath
}

// MarshalMLS encodes c.
func (c *Commit) MarshalMLS(w *codec.Writer) {
	writeList(w, c.Proposals)
	w.Optional(c.Path != nil, func(w *codec.Writer) { c.Path.MarshalMLS(w) })
}

// UnmarshalMLS decodes a Commit.
func (c *Commit) UnmarshalMLS(r *codec.Reader) {
	*c = Commit{Proposals: readList[ProposalOrRef](r)}
	r.Optional(func(r *codec.Reader) {
		c.Path = new(UpdatePath)
		c.Path.UnmarshalMLS(r)
	})
}

// HPKECiphertext is the output of EncryptWithLabel (§7.6, §5.1.3).
//
//	struct {
//	    opaque kem_output<V>;
//	    opaque ciphertext<V>;
//	} HPKECiphertext;
type HPKECiphertext struct {
	KEMOutput  []byte
	Ciphertext []byte
}

// MarshalMLS encodes c.
func (c *HPKECiphertext) MarshalMLS(w *codec.Writer) {
	w.VarBytes(c.KEMOutput)
	w.VarBytes(c.Ciphertext)
}

// UnmarshalMLS decodes an HPKECiphertext.
func (c *HPKECiphertext) UnmarshalMLS(r *codec.Reader) {
	*c = HPKECiphertext{KEMOutput: r.VarBytes(), Ciphertext: r.VarBytes()}
}

// UpdatePathNode is the new public key of one node on the committer's
// filtered direct path, with its path secret encrypted to each node of the
// copath node's resolution (§7.6).
//
//	struct {
//	    HPKEPublicKey encryption_key;
//	    HPKECiphertext encrypted_path_secret<V>;
//	} UpdatePathNode;
type UpdatePathNode struct {
	EncryptionKey       []byte
	EncryptedPathSecret []HPKECiphertext
}

// MarshalMLS encodes n.
func (n *UpdatePathNode) MarshalMLS(w *codec.Writer) {
	w.VarBytes(n.EncryptionKey)
	writeList(w, n.EncryptedPathSecret)
}

// UnmarshalMLS decodes an UpdatePathNode.
func (n *UpdatePathNode) UnmarshalMLS(r *codec.Reader) {
	*n = UpdatePathNode{EncryptionKey: r.VarBytes(), EncryptedPathSecret: readList[HPKECiphertext](r)}
}

// UpdatePath is the committer's new leaf and filtered direct path (§7.6).
//
//	struct {
//	    LeafNode leaf_node;
//	    UpdatePathNode nodes<V>;
//	} UpdatePath;
type UpdatePath struct {
	LeafNode LeafNode
	Nodes    []UpdatePathNode
}

// MarshalMLS encodes p.
func (p *UpdatePath) MarshalMLS(w *codec.Writer) {
	p.LeafNode.MarshalMLS(w)
	writeList(w, p.Nodes)
}

// UnmarshalMLS decodes an UpdatePath.
func (p *UpdatePath) UnmarshalMLS(r *codec.Reader) {
	*p = UpdatePath{}
	p.LeafNode.UnmarshalMLS(r)
	p.Nodes = readList[UpdatePathNode](r)
}
