package group

import (
	"fmt"
	"github.com/mlsengine/mlsengine/mls/persist"
	"github.com/mlsengine/mlsengine/storage"
	"math"
	"math/bits"
	"strconv"
	"strings"

	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/ratchettree"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
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
// the tree. A node whose encoding exceeds tileInline bytes (a leaf with a
// long X.509 chain, a parent with thousands of unmerged leaves) is stored
// in a record of its own, tree/x/<node>, and the tile holds its hash and a
// reference; so a tile stays under 17 KiB whatever the credentials. The
// hashes of nodes strictly inside a blank subtree (every node below its
// root blank) are not needed to load or change the tree (ratchettree
// hashes them when a change below makes them needed), so tiles holding
// only such nodes are not stored: a tree of 50,000 leaves in 65,536 keeps
// no tile for its blank end, and the hash of the blank subtree's root.
//
// Layout 1 (groups created before layout 2) stores the tree in chunks of
// consecutive nodes, tree/<chunk size>/<k>; such groups keep that layout
// (a switch would rewrite the whole tree in one unit).
const (
	tileLevels  = 4
	tileNodes   = 1<<tileLevels - 1
	tileInline  = 1024
	tileVersion = 1

	treeLayoutChunks = 1 // tree/size [1, leaves, chunk size]: layout 1
	treeLayoutTiles  = 2 // tree/size [2, leaves]: layout 2
)

// tile tags: how a node is stored in its tile.
const (
	tileBlank    = 0 // blank
	tileLeaf     = 1 // opaque leaf_node<V>: a LeafNode encoding
	tileParent   = 2 // a ParentNode (§7.1)
	tileExternal = 3 // in tree/x/<node>: a LeafNode or ParentNode encoding
)

// level is the level of node x (Appendix C).
func level(x uint32) uint { return uint(bits.TrailingZeros32(^x)) }

// parentOf is the parent of x in a tree large enough to hold it.
func parentOf(x uint32) uint32 {
	k := level(x)
	b := (x >> (k + 1)) & 1
	return (x | 1<<k) ^ (b << (k + 1))
}

// tileRoot is the root of the tile holding node x.
func tileRoot(x uint32) uint32 {
	top := level(x)/tileLevels*tileLevels + tileLevels - 1
	m := uint64(1)<<(top+1) - 1
	return uint32(uint64(x)&^m | m>>1)
}

// tileNode is the k-th node (0 <= k < tileNodes) of tile r, in array
// order.
func tileNode(r uint32, k int) uint64 {
	top := level(r)
	step := uint64(1) << (top + 1 - tileLevels)
	lo := uint64(r) - (uint64(1)<<top - 1)
	return lo + step - 1 + uint64(k)*step
}

func tileName(r uint32) string { return "tree/t/" + strconv.FormatUint(uint64(r), 10) }

func externalName(x uint32) string { return "tree/x/" + strconv.FormatUint(uint64(x), 10) }

// treeSizeValue is the tree/size record of layout 2:
//
//	[2, leaf count uint]
func treeSizeValue(leaves uint32) []byte {
	return persist.Envelope(func(e *persist.Encoder) {
		e.Array(2)
		e.Uint(treeLayoutTiles)
		e.Uint(uint64(leaves))
	})
}

// chunkSizeValue is the tree/size record of layout 1:
//
//	[1, leaf count uint, chunk size uint]
func chunkSizeValue(leaves, cs uint32) []byte {
	return persist.Envelope(func(e *persist.Encoder) {
		e.Array(3)
		e.Uint(treeLayoutChunks)
		e.Uint(uint64(leaves))
		e.Uint(uint64(cs))
	})
}

// openTreeSize decodes a tree/size record of either layout; cs is 0 for
// layout 2 only.
func openTreeSize(v []byte) (leaves, cs uint32, err error) {
	d := persist.NewDecoder(v)
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

// logFullTree logs every record of a tree in layout 2: a new group's.
func (g *Group) logFullTree() {
	g.storedCS = 0
	g.extNodes = nil
	g.logAllTiles()
	g.tree.ResetChanged()
}

// logAllTiles logs every tile holding a non-blank node, its external
// nodes, and tree/size.
func (g *Group) logAllTiles() {
	w := uint64(g.tree.Width())
	g.tree.TreeHash() // every hash current
	for b := uint(0); uint64(1)<<(b*tileLevels)-1 < w; b++ {
		top := b*tileLevels + tileLevels - 1
		for r := uint64(1)<<top - 1; ; r += uint64(1) << (top + 1) {
			if tileNode(uint32(r), 0) >= w {
				break
			}
			g.logTile(uint32(r), func(uint32) bool { return true })
		}
	}
	g.log.own(groupScope, storage.Public, "tree/size", treeSizeValue(uint32(g.tree.LeafCount())))
	g.storedWidth = g.tree.Width()
}

// logTreeChanges logs the tree records holding nodes changed since the
// last log (ratchettree's change set) and their ancestors, whose hashes
// changed with them: O(log N) records per commit.
func (g *Group) logTreeChanges() {
	if g.storedCS != 0 {
		g.logChunkChanges()
		return
	}
	w := g.tree.Width()
	g.tree.TreeHash() // every hash current
	changed := map[uint32]bool{}
	for _, n := range g.tree.Changed() {
		changed[uint32(n)] = true
	}
	// The tiles to write: those of the changed nodes and their ancestors,
	// whose hashes changed, and those of the ancestors' blank siblings,
	// whose hashes became needed or not needed (logTile).
	tiles := map[uint32]bool{}
	seen := map[uint32]bool{}
	root := uint32(g.tree.LeafCount()) - 1
	oldRoot := (g.storedWidth+1)/2 - 1
	for x := range changed {
		tiles[tileRoot(x)] = true
		if x >= w {
			// Truncated away (§7.7), with its tiles up to the old root.
			g.unlogExternal(x)
			for y := x; level(y) < level(oldRoot); {
				p := parentOf(y)
				tiles[tileRoot(2*p-y)] = true
				tiles[tileRoot(p)] = true
				y = p
			}
			continue
		}
		for x != root && !seen[x] {
			seen[x] = true
			p := parentOf(x)
			if sib := 2*p - x; g.tree.SubtreeBlank(treemath.NodeIndex(sib)) {
				tiles[tileRoot(sib)] = true
			}
			x = p
			tiles[tileRoot(x)] = true
		}
	}
	for r := range tiles {
		g.logTile(r, func(x uint32) bool { return changed[x] })
	}
	if g.storedWidth != w {
		g.log.own(groupScope, storage.Public, "tree/size", treeSizeValue(uint32(g.tree.LeafCount())))
		g.storedWidth = w
	}
	g.tree.ResetChanged()
}

// logTile logs tile r as the tree holds it now, or deletes it if none of
// its nodes' hashes is needed (every node strictly inside a blank
// subtree). External nodes are written when changed(x) says so, or when
// they were inline before.
func (g *Group) logTile(r uint32, changed func(x uint32) bool) {
	w := uint64(g.tree.Width())
	root := uint32(g.tree.LeafCount()) - 1
	nh := g.suite.HashLen()
	hashes := make([]byte, 0, tileNodes*nh)
	nodes := codec.NewWriter(256)
	needed := false
	for k := range tileNodes {
		xx := tileNode(r, k)
		if xx >= w {
			break
		}
		x := uint32(xx)
		n := treemath.NodeIndex(x)
		needed = needed || x == root || !g.tree.SubtreeBlank(treemath.NodeIndex(parentOf(x)))
		hashes = append(hashes, g.tree.NodeHash(n)...)
		if g.tree.IsBlank(n) {
			nodes.Uint8(tileBlank)
			g.unlogExternal(x)
			continue
		}
		enc := g.nodeEncoding(x)
		if len(enc) > tileInline {
			nodes.Uint8(tileExternal)
			if changed(x) || !g.extNodes[x] {
				g.log.put(groupScope, storage.Public, externalName(x), enc)
				if g.extNodes == nil {
					g.extNodes = map[uint32]bool{}
				}
				g.extNodes[x] = true
			}
			continue
		}
		g.unlogExternal(x)
		if x%2 == 0 {
			nodes.Uint8(tileLeaf)
			nodes.VarBytes(enc)
		} else {
			nodes.Uint8(tileParent)
			nodes.Raw(enc)
		}
	}
	if !needed {
		g.log.del(groupScope, storage.Public, tileName(r))
		return
	}
	g.log.own(groupScope, storage.Public, tileName(r), tileValue(hashes, nodes.Bytes()))
}

// unlogExternal deletes node x's own record, if it has one.
func (g *Group) unlogExternal(x uint32) {
	if g.extNodes[x] {
		g.log.del(groupScope, storage.Public, externalName(x))
		delete(g.extNodes, x)
	}
}

// nodeEncoding is the encoding of non-blank node x: its LeafNode or
// ParentNode.
func (g *Group) nodeEncoding(x uint32) []byte {
	if x%2 == 0 {
		return g.tree.LeafBytes(treemath.LeafIndex(x / 2))
	}
	w := codec.NewWriter(128)
	g.tree.ParentNode(treemath.NodeIndex(x)).MarshalMLS(w)
	return w.Bytes()
}

// tileValue is a tree/t/<r> record:
//
//	[1, bin hashes, bin nodes]
//
// hashes holds the tree hash of each of the tile's first k nodes (those
// inside the tree when it was written), Nh bytes each; nodes holds the
// same k nodes, each a tag (tileBlank, tileLeaf, tileParent,
// tileExternal) followed by what the tag says.
func tileValue(hashes, nodes []byte) []byte {
	return persist.Envelope(func(e *persist.Encoder) {
		e.Array(3)
		e.Uint(tileVersion)
		e.Bin(hashes)
		e.Bin(nodes)
	})
}

// openTile decodes a record written by tileValue. The results are slices
// of v, which the restored tree keeps (its leaves' encodings).
func openTile(v []byte) (hashes, nodes []byte, err error) {
	d := persist.NewDecoder(v)
	d.Open(tileVersion, 2)
	hashes = d.BinView(-1)
	nodes = d.BinView(-1)
	return hashes, nodes, d.Finish()
}

// restoreTiles rebuilds a tree of the given leaf count from its tiles,
// with the hashes they hold.
func (rs *restorer) restoreTiles(g *Group, leaves uint32) error {
	// The leaf count comes from a record: bound it by the tiles that hold
	// its last leaves before sizing anything by it.
	maxLeafNode := uint64(0)
	type tile struct {
		r uint32
		v []byte
	}
	var tiles []tile
	for name, v := range rs.pub {
		s, ok := strings.CutPrefix(name, "tree/t/")
		if !ok {
			continue
		}
		r, err := strconv.ParseUint(s, 10, 32)
		if err != nil || tileRoot(uint32(r)) != uint32(r) || strconv.FormatUint(r, 10) != s {
			return corrupt(name, fmt.Errorf("not a tile"))
		}
		tiles = append(tiles, tile{uint32(r), v})
		if level(uint32(r)) == tileLevels-1 {
			maxLeafNode = max(maxLeafNode, r+tileNodes/2)
		}
	}
	// The right half of the tree holds a leaf (§7.7), whose tile is
	// stored: leaves <= its node index.
	if leaves == 0 || bits.OnesCount32(leaves) != 1 || uint64(leaves) > maxLeafNode+1 {
		return corrupt("tree/size", fmt.Errorf("%d leaves for leaf tiles up to node %d", leaves, maxLeafNode))
	}
	nh := g.suite.HashLen()
	w := 2*uint64(leaves) - 1
	st := &ratchettree.StoredTree{
		LeafCount: leaves,
		Leaves:    make([][]byte, leaves),
		Parents:   make([]*wire.ParentNode, leaves),
		Hashes:    make([]byte, int(w)*nh),
	}
	known := make([]uint64, (w+63)/64)
	st.Known = func(x uint32) bool { return known[x/64]&(1<<(x%64)) != 0 }
	for _, tl := range tiles {
		r := tl.r
		hashes, nodes, err := openTile(tl.v)
		if err == nil && (len(hashes)%nh != 0 || len(hashes)/nh > tileNodes) {
			err = fmt.Errorf("%d bytes of hashes", len(hashes))
		}
		if err != nil {
			return corrupt(tileName(r), err)
		}
		rd := codec.NewReader(nodes)
		for k := range len(hashes) / nh {
			xx := tileNode(r, k)
			tag := rd.Uint8()
			if xx >= w {
				// Written when the tree was larger; a node that was not
				// blank would have been rewritten when it was removed.
				if tag != tileBlank {
					rd.Fail(fmt.Errorf("node %d beyond the tree", xx))
				}
				continue
			}
			x := uint32(xx)
			var enc []byte
			switch tag {
			case tileBlank:
			case tileLeaf:
				if x%2 == 0 {
					enc = rd.VarBytesView()
				}
			case tileParent:
				if x%2 == 1 {
					p := &wire.ParentNode{}
					p.UnmarshalMLS(rd)
					st.Parents[x/2] = p
				}
			case tileExternal:
				if enc, err = rs.need(rs.pub, externalName(x)); err != nil {
					return err
				}
				if g.extNodes == nil {
					g.extNodes = map[uint32]bool{}
				}
				g.extNodes[x] = true
				if x%2 == 1 {
					p, err := wire.Unmarshal[wire.ParentNode](enc)
					if err != nil {
						return corrupt(externalName(x), err)
					}
					st.Parents[x/2], enc = p, nil
				}
			default:
				rd.Fail(fmt.Errorf("node %d: tag %d", x, tag))
			}
			if (tag == tileLeaf && x%2 != 0) || (tag == tileParent && x%2 != 1) {
				rd.Fail(fmt.Errorf("node %d: tag %d", x, tag))
			}
			if enc != nil {
				st.Leaves[x/2] = enc
			}
			copy(st.Hashes[int(x)*nh:], hashes[k*nh:(k+1)*nh])
			known[x/64] |= 1 << (x % 64)
		}
		if err := rd.Finish(); err != nil {
			return corrupt(tileName(r), err)
		}
	}
	t, err := ratchettree.FromStored(g.suite, st)
	if err != nil {
		return corrupt("tree", err)
	}
	g.tree = t
	g.storedCS, g.storedWidth = 0, t.Width()
	t.ResetChanged()
	return nil
}
