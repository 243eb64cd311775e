// Package persist holds the persisted form of MLS state: the strict
// MessagePack envelope codec of every record value that is not an RFC
// 9420 structure, shared with engine for its own records, so that every
// record decodes by the same rules; and a group's records, their names and
// the layouts of their values (records.go, tree.go, past.go), apart from
// the state machine of mls/group that decides what to write when and
// rebuilds a group from them, so that the formats stored groups depend on
// are in one place and one fuzz target covers them.
//
// It is pure: no I/O, no global mutable state.
package persist
