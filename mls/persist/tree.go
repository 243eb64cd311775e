package persist

import (
	"math"
	"strconv"

	"github.com/mlsengine/mlsengine/mls/treemath"
)

// The ratchet tree's records.
//
// Layout 2 stores the tree in tiles. Tile r, named tree/t/<r>, holds the
// nodes under node r (a node of level 4b+3 of the array layout, Appendix
// C) whose level is at least 4b: fifteen nodes, the eight leaves and seven
// parents of a subtree for b = 0, fifteen parents for higher b. Tiles never
// move as the tree grows or shrinks (node indexes do not change), a path
// from a leaf to the root crosses about log2(N)/4 of them, and a commit
// rewrites only the tiles holding a node it changed or an ancestor of one:
// about 5 tiles, 5 to 10 KiB, for a self-update at 50,000 members. With
// every node goes its tree hash (§7.8), so that loading need not rehash
// the tree. A node whose encoding exceeds TileInline bytes (a leaf with a
// long X.509 chain, a parent with thousands of unmerged leaves) is stored
// in a record of its own, tree/x/<node>, and the tile holds its hash and a
// reference; so a tile stays under 17 KiB whatever the credentials. The
// hashes of nodes strictly inside a blank subtree (every node below its
// root blank) are not needed to load or change the tree (ratchettree
// hashes them when a change below makes them needed), so tiles holding
// only such nodes are not stored: a tree of 50,000 leaves in 65,536 keeps
// no tile for its blank end, only the hashes of its blank subtrees' roots.
//
// Layout 1 (groups created before layout 2) stores the tree in chunks of
// consecutive nodes, tree/<chunk size>/<k>; such groups keep that layout
// (a switch would rewrite the whole tree in one unit).
const (
	TileLevels = 4
	TileNodes  = 1<<TileLevels - 1
	TileInline = 1024

	tileVersion      = 1
	treeLayoutChunks = 1 // tree/size [1, leaves, chunk size]: layout 1
	treeLayoutTiles  = 2 // tree/size [2, leaves]: layout 2
)

// Tile tags: how a node is stored in its tile.
const (
	TileBlank    = 0 // blank
	TileLeaf     = 1 // opaque leaf_node<V>: a LeafNode encoding
	TileParent   = 2 // a ParentNode (§7.1)
	TileExternal = 3 // in tree/x/<node>: a LeafNode or ParentNode encoding
)

// Layout 1 record sizes. A storage unit on an existing group holds at most
// 512 operations of at most 256 KiB each (package storage), whatever the
// group's size: a change of the tree's chunk size rewrites the whole tree
// (at most MaxTreeRecords deletions and half as many puts).
const (
	minTreeChunk   = 64
	MaxTreeRecords = 128
	// MaxStoredTreeRecords is what a restore accepts: the limit of
	// earlier versions.
	MaxStoredTreeRecords = 256
)

// TreeChunk is the number of nodes per tree record of layout 1 for a tree
// of width nodes: at least minTreeChunk, and at most MaxTreeRecords
// records.
func TreeChunk(width uint32) uint32 {
	cs := uint32(minTreeChunk)
	for uint64(cs)*MaxTreeRecords < uint64(width) {
		cs *= 2
	}
	return cs
}

// TreeChunkName names the layout 1 record of the k-th chunk of cs nodes.
func TreeChunkName(cs, k uint32) string {
	return "tree/" + strconv.FormatUint(uint64(cs), 10) + "/" + strconv.FormatUint(uint64(k), 10)
}

// level is the level of node x (Appendix C).
func level(x uint32) uint { return treemath.Level(treemath.NodeIndex(x)) }

// TileRoot is the root of the tile holding node x.
func TileRoot(x uint32) uint32 {
	top := level(x)/TileLevels*TileLevels + TileLevels - 1
	m := uint64(1)<<(top+1) - 1
	return uint32(uint64(x)&^m | m>>1)
}

// IsLeafTile reports whether tile r holds leaves, the tiles that bound
// how many leaves a tree can claim.
func IsLeafTile(r uint32) bool { return level(r) == TileLevels-1 }

// TileNode is the k-th node (0 <= k < TileNodes) of tile r, in array
// order.
func TileNode(r uint32, k int) uint64 {
	top := level(r)
	step := uint64(1) << (top + 1 - TileLevels)
	lo := uint64(r) - (uint64(1)<<top - 1)
	return lo + step - 1 + uint64(k)*step
}

// TileName names tile r.
func TileName(r uint32) string { return TileNamePrefix + strconv.FormatUint(uint64(r), 10) }

// ParseTileRoot returns the root of the tile whose name is TileNamePrefix
// followed by s, if s spells a tile's root in its one form.
func ParseTileRoot(s string) (r uint32, ok bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || TileRoot(uint32(n)) != uint32(n) || strconv.FormatUint(n, 10) != s {
		return 0, false
	}
	return uint32(n), true
}

// ExternalName names the record of node x, too large for its tile.
func ExternalName(x uint32) string { return "tree/x/" + strconv.FormatUint(uint64(x), 10) }

// TreeSizeValue is the tree/size record of layout 2:
//
//	[2, leaf count uint]
func TreeSizeValue(leaves uint32) []byte {
	return Envelope(func(e *Encoder) {
		e.Array(2)
		e.Uint(treeLayoutTiles)
		e.Uint(uint64(leaves))
	})
}

// ChunkSizeValue is the tree/size record of layout 1:
//
//	[1, leaf count uint, chunk size uint]
func ChunkSizeValue(leaves, cs uint32) []byte {
	return Envelope(func(e *Encoder) {
		e.Array(3)
		e.Uint(treeLayoutChunks)
		e.Uint(uint64(leaves))
		e.Uint(uint64(cs))
	})
}

// OpenTreeSize decodes a tree/size record of either layout; cs is 0 for
// layout 2 only.
func OpenTreeSize(v []byte) (leaves, cs uint32, err error) {
	d := NewDecoder(v)
	switch layout, n := d.OpenAny(2); {
	case d.Err() != nil:
	case layout == treeLayoutChunks && n == 2:
		leaves, cs = uint32(d.Uint(math.MaxUint32)), uint32(d.Uint(math.MaxUint32))
		if cs == 0 {
			d.Fail("layout 1 with chunks of 0 nodes")
		}
	case layout == treeLayoutTiles && n == 1:
		leaves = uint32(d.Uint(math.MaxUint32))
	default:
		d.Unknown(layout, n)
	}
	return leaves, cs, d.Finish()
}

// TileValue is a tree/t/<r> record:
//
//	[1, bin hashes, bin nodes]
//
// hashes holds the tree hash of each of the tile's first k nodes (those
// inside the tree when it was written), Nh bytes each; nodes holds the
// same k nodes, each a tag (TileBlank, TileLeaf, TileParent,
// TileExternal) followed by what the tag says.
func TileValue(hashes, nodes []byte) []byte {
	return Envelope(func(e *Encoder) {
		e.Array(3)
		e.Uint(tileVersion)
		e.Bin(hashes)
		e.Bin(nodes)
	})
}

// OpenTile decodes a record written by TileValue. The results are slices
// of v, so that a restored tree can keep its leaves' encodings without a
// copy.
func OpenTile(v []byte) (hashes, nodes []byte, err error) {
	d := NewDecoder(v)
	d.Open(tileVersion, 2)
	hashes = d.BinView(-1)
	nodes = d.BinView(-1)
	return hashes, nodes, d.Finish()
}
