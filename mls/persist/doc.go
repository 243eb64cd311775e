// Package persist holds what the persisted form of MLS state is built on:
// the strict MessagePack envelope codec of every record value that is not
// an RFC 9420 structure, shared by the packages that define records
// (mls/group for a group's records, engine for its own), so that every
// record decodes by the same rules and one fuzz target covers them.
//
// It is pure: no I/O, no global mutable state.
package persist
