package treemath_test

import (
	"fmt"

	"github.com/mlsengine/mlsengine/mls/treemath"
)

func Example() {
	n, _ := treemath.FullLeafCount(5) // a 5-member group has an 8-leaf tree
	x, _ := treemath.LeafToNode(2, n)
	root, _ := treemath.Root(n)
	path, _ := treemath.DirectPath(x, n)
	copath, _ := treemath.Copath(x, n)
	fmt.Println(n, x, root, path, copath)
	_, err := treemath.Parent(root, n)
	fmt.Println(err)
	// Output:
	// 8 4 7 [5 3 7] [6 1 11]
	// treemath: the root has no parent
}
