package conformance

import (
	"encoding/json"
	"fmt"

	"github.com/mlsengine/mlsengine/mls/treemath"
)

// verifyTreeMath checks n_nodes, root and the left, right, parent and
// sibling arrays of a tree-math case (RFC 9420 Appendix C); a null entry
// means the relation is undefined for that node and must be reported as an
// error.
func verifyTreeMath(raw json.RawMessage) error {
	var tc struct {
		NLeaves uint32    `json:"n_leaves"`
		NNodes  uint32    `json:"n_nodes"`
		Root    uint32    `json:"root"`
		Left    []*uint32 `json:"left"`
		Right   []*uint32 `json:"right"`
		Parent  []*uint32 `json:"parent"`
		Sibling []*uint32 `json:"sibling"`
	}
	if err := decodeCase(raw, &tc); err != nil {
		return err
	}
	n := treemath.LeafCount(tc.NLeaves)
	w, err := treemath.NodeWidth(n)
	if err != nil {
		return err
	}
	if w != tc.NNodes {
		return fmt.Errorf("%w: n_nodes %d, want %d", ErrMismatch, w, tc.NNodes)
	}
	root, err := treemath.Root(n)
	if err != nil {
		return err
	}
	if uint32(root) != tc.Root {
		return fmt.Errorf("%w: root %d, want %d", ErrMismatch, root, tc.Root)
	}
	relations := []struct {
		name string
		f    func(treemath.NodeIndex, treemath.LeafCount) (treemath.NodeIndex, error)
		want []*uint32
	}{
		{"left", treemath.Left, tc.Left},
		{"right", treemath.Right, tc.Right},
		{"parent", treemath.Parent, tc.Parent},
		{"sibling", treemath.Sibling, tc.Sibling},
	}
	for _, rel := range relations {
		if uint32(len(rel.want)) != w {
			return fmt.Errorf("%w: %s has %d entries, want %d", ErrMismatch, rel.name, len(rel.want), w)
		}
		for i, want := range rel.want {
			got, err := rel.f(treemath.NodeIndex(i), n)
			switch {
			case want == nil && err == nil:
				return fmt.Errorf("%w: %s[%d] = %d, want undefined", ErrMismatch, rel.name, i, got)
			case want != nil && err != nil:
				return fmt.Errorf("%w: %s[%d]: %w", ErrMismatch, rel.name, i, err)
			case want != nil && uint32(got) != *want:
				return fmt.Errorf("%w: %s[%d] = %d, want %d", ErrMismatch, rel.name, i, got, *want)
			}
		}
	}
	return nil
}
