package wire

import (
	"fmt"

	"github.com/mlsengine/mlsengine/mls/codec"
)

// ParentNode is the public content of an intermediate tree node (§7.1).
//
//	struct {
//	    HPKEPublicKey encryption_key;
//	    opaque parent_hash<V>;
//	    uint32 unmerged_leaves<V>;
//	} ParentNode;
type ParentNode struct {
	EncryptionKey  []byte
	ParentHash     []byte
	UnmergedLeaves []uint32
}

// MarshalMLS encodes p.
func (p *ParentNode) MarshalMLS(w *codec.Writer) {
	w.VarBytes(p.EncryptionKey)
	w.VarBytes(p.ParentHash)
	w.Vector(func(w *codec.Writer) {
		for _, l := range p.UnmergedLeaves {
			w.Uint32(l)
		}
	})
}

// UnmarshalMLS decodes a ParentNode. The order of unmerged_leaves is left
// to tree validation.
func (p *ParentNode) UnmarshalMLS(r *codec.Reader) {
	*p = ParentNode{EncryptionKey: r.VarBytes(), ParentHash: r.VarBytes()}
	r.VectorEach(func(r *codec.Reader) {
		p.UnmergedLeaves = append(p.UnmergedLeaves, r.Uint32())
	})
	if r.Err() != nil {
		p.UnmergedLeaves = nil
	}
}

// Node is a non-blank node of a ratchet tree (§12.4.3.3).
//
//	struct {
//	    NodeType node_type;
//	    select (Node.node_type) {
//	        case leaf:   LeafNode leaf_node;
//	        case parent: ParentNode parent_node;
//	    };
//	} Node;
type Node struct {
	NodeType   NodeType
	LeafNode   *LeafNode   // leaf
	ParentNode *ParentNode // parent
}

// MarshalMLS encodes n.
func (n *Node) MarshalMLS(w *codec.Writer) {
	w.Uint8(uint8(n.NodeType))
	switch n.NodeType {
	case NodeTypeLeaf:
		orZero(n.LeafNode).MarshalMLS(w)
	case NodeTypeParent:
		orZero(n.ParentNode).MarshalMLS(w)
	}
}

// UnmarshalMLS decodes a Node.
func (n *Node) UnmarshalMLS(r *codec.Reader) {
	*n = Node{NodeType: NodeType(r.Uint8())}
	switch n.NodeType {
	case NodeTypeLeaf:
		n.LeafNode = new(LeafNode)
		n.LeafNode.UnmarshalMLS(r)
	case NodeTypeParent:
		n.ParentNode = new(ParentNode)
		n.ParentNode.UnmarshalMLS(r)
	default:
		unknown(r, "node type", n.NodeType)
	}
}

// RatchetTree is the public ratchet tree in array order, as the
// ratchet_tree extension carries it (§12.4.3.3): node i is nil when blank,
// leaves are at even and parents at odd indices. Decoding rejects an empty
// tree, a trailing blank node and a node of the wrong type for its index
// (ErrInvalidTree); the receiver extends the tree with blanks to a full
// 2^(d+1)-1 nodes.
//
//	optional<Node> ratchet_tree<V>;
type RatchetTree []*Node

// MarshalMLS encodes t.
func (t RatchetTree) MarshalMLS(w *codec.Writer) {
	w.Vector(func(w *codec.Writer) {
		for _, n := range t {
			w.Optional(n != nil, func(w *codec.Writer) { n.MarshalMLS(w) })
		}
	})
}

// UnmarshalMLS decodes a RatchetTree.
func (t *RatchetTree) UnmarshalMLS(r *codec.Reader) {
	var nodes RatchetTree
	r.VectorEach(func(r *codec.Reader) {
		var n *Node
		r.Optional(func(r *codec.Reader) {
			n = new(Node)
			n.UnmarshalMLS(r)
		})
		if want := nodeTypeAt(len(nodes)); n != nil && r.Err() == nil && n.NodeType != want {
			r.Fail(fmt.Errorf("%w: node %d is a %v node, want %v", ErrInvalidTree, len(nodes), n.NodeType, want))
		}
		nodes = append(nodes, n)
	})
	switch {
	case r.Err() != nil:
		nodes = nil
	case len(nodes) == 0:
		r.Fail(fmt.Errorf("%w: no nodes", ErrInvalidTree))
		nodes = nil
	case nodes[len(nodes)-1] == nil:
		// "The receiver MUST check that the last node in ratchet_tree is
		// non-blank" (§12.4.3.3).
		r.Fail(fmt.Errorf("%w: last node is blank", ErrInvalidTree))
		nodes = nil
	}
	*t = nodes
}

// nodeTypeAt is the type of the node at index i of the array
// representation: leaves are at even indices (Appendix C).
func nodeTypeAt(i int) NodeType {
	if i%2 == 0 {
		return NodeTypeLeaf
	}
	return NodeTypeParent
}

// Bytes returns the encoding of t.
func (t RatchetTree) Bytes() []byte { return encode(t) }

// TreeHashInput is the input of a node's tree hash (§7.8).
//
//	struct {
//	  NodeType node_type;
//	  select (TreeHashInput.node_type) {
//	    case leaf:   LeafNodeHashInput leaf_node;
//	    case parent: ParentNodeHashInput parent_node;
//	  };
//	} TreeHashInput;
type TreeHashInput struct {
	NodeType   NodeType
	LeafNode   *LeafNodeHashInput   // leaf
	ParentNode *ParentNodeHashInput // parent
}

// MarshalMLS encodes in.
func (in *TreeHashInput) MarshalMLS(w *codec.Writer) {
	w.Uint8(uint8(in.NodeType))
	switch in.NodeType {
	case NodeTypeLeaf:
		orZero(in.LeafNode).MarshalMLS(w)
	case NodeTypeParent:
		orZero(in.ParentNode).MarshalMLS(w)
	}
}

// UnmarshalMLS decodes a TreeHashInput.
func (in *TreeHashInput) UnmarshalMLS(r *codec.Reader) {
	*in = TreeHashInput{NodeType: NodeType(r.Uint8())}
	switch in.NodeType {
	case NodeTypeLeaf:
		in.LeafNode = new(LeafNodeHashInput)
		in.LeafNode.UnmarshalMLS(r)
	case NodeTypeParent:
		in.ParentNode = new(ParentNodeHashInput)
		in.ParentNode.UnmarshalMLS(r)
	default:
		unknown(r, "node type", in.NodeType)
	}
}

// Bytes returns the encoding of in, the value hashed into the tree hash.
func (in *TreeHashInput) Bytes() []byte { return encode(in) }

// LeafNodeHashInput is the tree hash input of a leaf (§7.8); LeafNode is
// nil for a blank leaf.
//
//	struct {
//	    uint32 leaf_index;
//	    optional<LeafNode> leaf_node;
//	} LeafNodeHashInput;
type LeafNodeHashInput struct {
	LeafIndex uint32
	LeafNode  *LeafNode
}

// MarshalMLS encodes in.
func (in *LeafNodeHashInput) MarshalMLS(w *codec.Writer) {
	w.Uint32(in.LeafIndex)
	w.Optional(in.LeafNode != nil, func(w *codec.Writer) { in.LeafNode.MarshalMLS(w) })
}

// UnmarshalMLS decodes a LeafNodeHashInput.
func (in *LeafNodeHashInput) UnmarshalMLS(r *codec.Reader) {
	*in = LeafNodeHashInput{LeafIndex: r.Uint32()}
	r.Optional(func(r *codec.Reader) {
		in.LeafNode = new(LeafNode)
		in.LeafNode.UnmarshalMLS(r)
	})
}

// ParentNodeHashInput is the tree hash input of a parent node (§7.8);
// ParentNode is nil for a blank node.
//
//	struct {
//	    optional<ParentNode> parent_node;
//	    opaque left_hash<V>;
//	    opaque right_hash<V>;
//	} ParentNodeHashInput;
type ParentNodeHashInput struct {
	ParentNode *ParentNode
	LeftHash   []byte
	RightHash  []byte
}

// MarshalMLS encodes in.
func (in *ParentNodeHashInput) MarshalMLS(w *codec.Writer) {
	w.Optional(in.ParentNode != nil, func(w *codec.Writer) { in.ParentNode.MarshalMLS(w) })
	w.VarBytes(in.LeftHash)
	w.VarBytes(in.RightHash)
}

// UnmarshalMLS decodes a ParentNodeHashInput.
func (in *ParentNodeHashInput) UnmarshalMLS(r *codec.Reader) {
	*in = ParentNodeHashInput{}
	r.Optional(func(r *codec.Reader) {
		in.ParentNode = new(ParentNode)
		in.ParentNode.UnmarshalMLS(r)
	})
	in.LeftHash = r.VarBytes()
	in.RightHash = r.VarBytes()
}

// ParentHashInput is the input of a parent hash (§7.9).
//
//	struct {
//	    HPKEPublicKey encryption_key;
//	    opaque parent_hash<V>;
//	    opaque original_sibling_tree_hash<V>;
//	} ParentHashInput;
type ParentHashInput struct {
	EncryptionKey           []byte
	ParentHash              []byte
	OriginalSiblingTreeHash []byte
}

// MarshalMLS encodes in.
func (in *ParentHashInput) MarshalMLS(w *codec.Writer) {
	w.VarBytes(in.EncryptionKey)
	w.VarBytes(in.ParentHash)
	w.VarBytes(in.OriginalSiblingTreeHash)
}

// UnmarshalMLS decodes a ParentHashInput.
func (in *ParentHashInput) UnmarshalMLS(r *codec.Reader) {
	*in = ParentHashInput{
		EncryptionKey:           r.VarBytes(),
		ParentHash:              r.VarBytes(),
		OriginalSiblingTreeHash: r.VarBytes(),
	}
}

// Bytes returns the encoding of in.
func (in *ParentHashInput) Bytes() []byte { return encode(in) }
