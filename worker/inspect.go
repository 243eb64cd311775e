package worker

import "github.com/mlsengine/mlsengine/engine"

// LastApplied returns the log sequence of the last input a worker applied
// to a member's group, from the cursor it stores with the group (0 if it
// stored none, or one this build cannot read). It is for operators'
// tools (mlsadmin inspect); a sequence means something only in the log
// stream of the deployment that wrote it.
func LastApplied(h *engine.Group) uint64 { return readCursor(h).Seq }
