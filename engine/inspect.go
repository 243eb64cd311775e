package engine

import (
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/treemath"
)

// What operators' tools (mlsadmin inspect) read of a group besides its
// state accessors: nothing here changes the group or reveals a secret.

// CursorRecordName is the name of the cursor's record (group scope,
// Public; see SetCursor), for tools that copy a group's records and must
// leave the cursor out, as a restore into another deployment does.
const CursorRecordName = cursorName

// TreeShape is the shape of a group's ratchet tree (RFC 9420 §4.1, §7.8):
// every tree is a perfect binary tree whose leaf count is a power of two,
// blank leaves included.
type TreeShape struct {
	// Leaves is the tree's leaf count, a power of two.
	Leaves int
	// BlankLeaves are the leaves with no member.
	BlankLeaves int
	// Width is the number of nodes, 2*Leaves-1.
	Width int
}

// TreeShape returns the shape of the current ratchet tree.
func (h *Group) TreeShape() (s TreeShape) {
	h.read(func(g *group.Group) {
		// The tree as the ratchet_tree extension carries it, without its
		// trailing blank nodes (§12.4.3.3): a joiner extends it to the
		// smallest perfect tree that holds it, and so does this.
		n, _ := treemath.FullLeafCount(uint32(len(g.RatchetTree())+1) / 2)
		s.Leaves = max(int(n), 1)
		s.Width = 2*s.Leaves - 1
		s.BlankLeaves = s.Leaves - g.MemberCount()
	})
	return s
}
