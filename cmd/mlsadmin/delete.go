package main

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/events"
)

type deleteCmd struct {
	connFlags `embed:"" group:"connection"`
	Member    string `arg:"" help:"Hosted member."`
	Group     string `arg:"" help:"Group id (text, or hex:<hex>)."`
	Yes       bool   `name:"yes" short:"y" help:"Do not ask for confirmation (required when standard input is not a terminal)."`
}

type deleteJSON struct {
	Member     string `json:"member"`
	GroupID    string `json:"group_id"`
	GroupIDHex string `json:"group_id_hex"`
	Deleted    bool   `json:"deleted"`
	RequestID  string `json:"request_id"`
}

// Run sends the delete-group command through the log, so that it is
// applied in order with the group's messages, and waits for its result.
// The member's state of the group is erased: it cannot read or send in the
// group again, and the other members are not told (remove it first).
func (c *deleteCmd) Run(e *env) error {
	gid, err := parseID(c.Group)
	if err != nil {
		return err
	}
	if !c.Yes && !isTerminal(e.stdin) {
		return usageErr(errors.New("delete is irrevocable: refusing without --yes when standard input is not a terminal"))
	}
	s, err := c.connect(e.ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := s.member(e.ctx, c.Member); err != nil {
		return err
	}
	// The worker answers a deletion of a group it does not have with
	// success: say that it is missing instead. The registry says which
	// groups a member is in; the store is asked when the registry does not
	// list it (it can lag) and the root key is at hand.
	reg, err := s.registry(e.ctx)
	if err != nil {
		return err
	}
	ms, err := reg.GroupMembers(e.ctx, gid)
	if err != nil {
		return err
	}
	if !slices.Contains(ms, c.Member) {
		if _, _, err := s.group(e.ctx, c.Member, gid); err != nil {
			if errors.Is(err, engine.ErrGroupNotFound) {
				return err
			}
			return fmt.Errorf("member %s has no group %s in the registry (%v): %w", c.Member, showID(gid), err, engine.ErrGroupNotFound)
		}
	}
	if !c.Yes {
		fmt.Fprintf(e.stderr, "Delete group %s of member %s? Its state is erased irrevocably. Type yes to confirm: ", showID(gid), c.Member)
		line, _ := bufio.NewReader(e.stdin).ReadString('\n')
		if strings.TrimSpace(line) != "yes" {
			return errors.New("not confirmed; nothing deleted")
		}
	}
	cmd := &events.Command{Kind: events.CmdDeleteGroup, Member: c.Member, Group: gid}
	if _, err := s.do(e.ctx, cmd); err != nil {
		return err
	}
	out := deleteJSON{Member: c.Member, GroupID: showID(gid), GroupIDHex: hex.EncodeToString(gid), Deleted: true, RequestID: cmd.ID}
	if e.json {
		return writeJSON(e.stdout, out)
	}
	fmt.Fprintf(e.stdout, "deleted group %s of member %s (request %s)\n", out.GroupID, c.Member, cmd.ID)
	return nil
}
