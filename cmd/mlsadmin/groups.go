package main

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
)

type groupsCmd struct {
	connFlags   `embed:"" group:"connection"`
	Member      string `name:"member" placeholder:"M" help:"Only the groups of this hosted member."`
	GroupPrefix string `name:"group-prefix" placeholder:"P" help:"Only the groups whose id starts with this (text, or hex:<hex>)."`
}

type groupsJSON struct {
	Groups []groupJSON `json:"groups"`
}

type groupJSON struct {
	GroupID    string   `json:"group_id"`
	GroupIDHex string   `json:"group_id_hex"`
	Members    []string `json:"hosted_members"`
}

// Run lists the registry's groups, by id, with their hosted members.
func (c *groupsCmd) Run(e *env) error {
	prefix, err := parseID(c.GroupPrefix)
	if err != nil {
		return err
	}
	s, err := c.connect(e.ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	if c.Member != "" {
		if _, err := s.member(e.ctx, c.Member); err != nil {
			return err
		}
	}
	reg, err := s.registry(e.ctx)
	if err != nil {
		return err
	}
	all, err := reg.Memberships(e.ctx)
	if err != nil {
		return err
	}
	out := groupsJSON{Groups: []groupJSON{}}
	for id, ms := range all {
		if !bytes.HasPrefix([]byte(id), prefix) || c.Member != "" && !slices.Contains(ms, c.Member) {
			continue
		}
		out.Groups = append(out.Groups, groupJSON{GroupID: showID([]byte(id)), GroupIDHex: hex.EncodeToString([]byte(id)), Members: ms})
	}
	slices.SortFunc(out.Groups, func(a, b groupJSON) int { return strings.Compare(a.GroupIDHex, b.GroupIDHex) })
	if e.json {
		return writeJSON(e.stdout, out)
	}
	t := table(e.stdout)
	fmt.Fprintln(t, "GROUP\tHOSTED MEMBERS")
	for _, g := range out.Groups {
		fmt.Fprintf(t, "%s\t%s\n", g.GroupID, strings.Join(g.Members, " "))
	}
	return t.Flush()
}

type membersCmd struct {
	connFlags `embed:"" group:"connection"`
	Member    string `arg:"" help:"Hosted member whose view is shown."`
	Group     string `arg:"" help:"Group id (text, or hex:<hex>)."`
}

type membersJSON struct {
	Member     string       `json:"member"`
	GroupID    string       `json:"group_id"`
	GroupIDHex string       `json:"group_id_hex"`
	Epoch      uint64       `json:"epoch"`
	Members    []memberJSON `json:"members"`
}

// Run lists the group's MLS members, hosted or not, from the member's
// state.
func (c *membersCmd) Run(e *env) error {
	gid, err := parseID(c.Group)
	if err != nil {
		return err
	}
	s, err := c.connect(e.ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	h, _, err := s.group(e.ctx, c.Member, gid)
	if err != nil {
		return err
	}
	out := membersJSON{Member: c.Member, GroupID: showID(gid), GroupIDHex: hex.EncodeToString(gid), Epoch: h.Epoch(), Members: membersOf(h)}
	if e.json {
		return writeJSON(e.stdout, out)
	}
	fmt.Fprintf(e.stdout, "group %s, epoch %d, as %s sees it:\n", out.GroupID, out.Epoch, c.Member)
	return printMembers(e.stdout, out.Members)
}
