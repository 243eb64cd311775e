package group

import (
	"fmt"
	"github.com/mlsengine/mlsengine/mls/persist"
	"github.com/mlsengine/mlsengine/storage"
	"math/bits"
	"strings"

	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/ratchettree"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// The ratchet tree's records: their layouts, tiles (layout 2) and chunks
// (layout 1), are package persist's (mls/persist/tree.go); here is what
// to write when the tree changes, and how to rebuild it.

// level is the level of node x (Appendix C).
func level(x uint32) uint { return uint(bits.TrailingZeros32(^x)) }

// parentOf is the parent of x in a tree large enough to hold it.
func parentOf(x uint32) uint32 {
	k := level(x)
	b := (x >> (k + 1)) & 1
	return (x | 1<<k) ^ (b << (k + 1))
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
	for b := uint(0); uint64(1)<<(b*persist.TileLevels)-1 < w; b++ {
		top := b*persist.TileLevels + persist.TileLevels - 1
		for r := uint64(1)<<top - 1; ; r += uint64(1) << (top + 1) {
			if persist.TileNode(uint32(r), 0) >= w {
				break
			}
			g.logTile(uint32(r), func(uint32) bool { return true })
		}
	}
	g.log.own(groupScope, storage.Public, persist.TreeSizeName, persist.TreeSizeValue(uint32(g.tree.LeafCount())))
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
		tiles[persist.TileRoot(x)] = true
		if x >= w {
			// Truncated away (§7.7), with its tiles up to the old root.
			g.unlogExternal(x)
			for y := x; level(y) < level(oldRoot); {
				p := parentOf(y)
				tiles[persist.TileRoot(2*p-y)] = true
				tiles[persist.TileRoot(p)] = true
				y = p
			}
			continue
		}
		for x != root && !seen[x] {
			seen[x] = true
			p := parentOf(x)
			if sib := 2*p - x; g.tree.SubtreeBlank(treemath.NodeIndex(sib)) {
				tiles[persist.TileRoot(sib)] = true
			}
			x = p
			tiles[persist.TileRoot(x)] = true
		}
	}
	for r := range tiles {
		g.logTile(r, func(x uint32) bool { return changed[x] })
	}
	if g.storedWidth != w {
		g.log.own(groupScope, storage.Public, persist.TreeSizeName, persist.TreeSizeValue(uint32(g.tree.LeafCount())))
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
	hashes := make([]byte, 0, persist.TileNodes*nh)
	nodes := codec.NewWriter(256)
	needed := false
	for k := range persist.TileNodes {
		xx := persist.TileNode(r, k)
		if xx >= w {
			break
		}
		x := uint32(xx)
		n := treemath.NodeIndex(x)
		needed = needed || x == root || !g.tree.SubtreeBlank(treemath.NodeIndex(parentOf(x)))
		hashes = append(hashes, g.tree.NodeHash(n)...)
		if g.tree.IsBlank(n) {
			nodes.Uint8(persist.TileBlank)
			g.unlogExternal(x)
			continue
		}
		enc := g.nodeEncoding(x)
		if len(enc) > persist.TileInline {
			nodes.Uint8(persist.TileExternal)
			if changed(x) || !g.extNodes[x] {
				g.log.put(groupScope, storage.Public, persist.ExternalName(x), enc)
				if g.extNodes == nil {
					g.extNodes = map[uint32]bool{}
				}
				g.extNodes[x] = true
			}
			continue
		}
		g.unlogExternal(x)
		if x%2 == 0 {
			nodes.Uint8(persist.TileLeaf)
			nodes.VarBytes(enc)
		} else {
			nodes.Uint8(persist.TileParent)
			nodes.Raw(enc)
		}
	}
	if !needed {
		g.log.del(groupScope, storage.Public, persist.TileName(r))
		return
	}
	g.log.own(groupScope, storage.Public, persist.TileName(r), persist.TileValue(hashes, nodes.Bytes()))
}

// unlogExternal deletes node x's own record, if it has one.
func (g *Group) unlogExternal(x uint32) {
	if g.extNodes[x] {
		g.log.del(groupScope, storage.Public, persist.ExternalName(x))
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
		s, ok := strings.CutPrefix(name, persist.TileNamePrefix)
		if !ok {
			continue
		}
		r, ok := persist.ParseTileRoot(s)
		if !ok {
			return corrupt(name, fmt.Errorf("not a tile"))
		}
		tiles = append(tiles, tile{r, v})
		if persist.IsLeafTile(r) {
			maxLeafNode = max(maxLeafNode, uint64(r)+persist.TileNodes/2)
		}
	}
	// The right half of the tree holds a leaf (§7.7), whose tile is
	// stored: leaves <= its node index.
	if leaves == 0 || bits.OnesCount32(leaves) != 1 || uint64(leaves) > maxLeafNode+1 {
		return corrupt(persist.TreeSizeName, fmt.Errorf("%d leaves for leaf tiles up to node %d", leaves, maxLeafNode))
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
		hashes, nodes, err := persist.OpenTile(tl.v)
		if err == nil && (len(hashes)%nh != 0 || len(hashes)/nh > persist.TileNodes) {
			err = fmt.Errorf("%d bytes of hashes", len(hashes))
		}
		if err != nil {
			return corrupt(persist.TileName(r), err)
		}
		rd := codec.NewReader(nodes)
		for k := range len(hashes) / nh {
			xx := persist.TileNode(r, k)
			tag := rd.Uint8()
			if xx >= w {
				// Written when the tree was larger; a node that was not
				// blank would have been rewritten when it was removed.
				if tag != persist.TileBlank {
					rd.Fail(fmt.Errorf("node %d beyond the tree", xx))
				}
				continue
			}
			x := uint32(xx)
			var enc []byte
			switch tag {
			case persist.TileBlank:
			case persist.TileLeaf:
				if x%2 == 0 {
					enc = rd.VarBytesView()
				}
			case persist.TileParent:
				if x%2 == 1 {
					p := &wire.ParentNode{}
					p.UnmarshalMLS(rd)
					st.Parents[x/2] = p
				}
			case persist.TileExternal:
				if enc, err = rs.need(rs.pub, persist.ExternalName(x)); err != nil {
					return err
				}
				if g.extNodes == nil {
					g.extNodes = map[uint32]bool{}
				}
				g.extNodes[x] = true
				if x%2 == 1 {
					p, err := wire.Unmarshal[wire.ParentNode](enc)
					if err != nil {
						return corrupt(persist.ExternalName(x), err)
					}
					st.Parents[x/2], enc = p, nil
				}
			default:
				rd.Fail(fmt.Errorf("node %d: tag %d", x, tag))
			}
			if (tag == persist.TileLeaf && x%2 != 0) || (tag == persist.TileParent && x%2 != 1) {
				rd.Fail(fmt.Errorf("node %d: tag %d", x, tag))
			}
			if enc != nil {
				st.Leaves[x/2] = enc
			}
			copy(st.Hashes[int(x)*nh:], hashes[k*nh:(k+1)*nh])
			known[x/64] |= 1 << (x % 64)
		}
		if err := rd.Finish(); err != nil {
			return corrupt(persist.TileName(r), err)
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
