package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/events"
	"github.com/mlsengine/mlsengine/jetstore"
	"github.com/mlsengine/mlsengine/storage"
	"github.com/mlsengine/mlsengine/worker"
)

type restoreCmd struct {
	connFlags      `embed:"" group:"connection"`
	File           string `arg:"" type:"existingfile" help:"Backup file (from mlsadmin backup)."`
	As             string `name:"as" placeholder:"NEW_MEMBER" help:"Restore as this member id (default: the backed-up member's)."`
	Identity       string `name:"identity" short:"i" placeholder:"AGE_KEY_FILE" xor:"key" required:"" type:"existingfile" help:"age identity file (AGE-SECRET-KEY-1... lines) whose key the backup was encrypted to. Or --passphrase-file."`
	PassphraseFile string `name:"passphrase-file" placeholder:"FILE" xor:"key" required:"" type:"existingfile" help:"File whose first line is the backup's passphrase. Or --identity."`
	KeepCursor     bool   `name:"keep-cursor" help:"Keep each group's worker cursor (only when restoring into the deployment the backup came from)."`
}

// Help is the command's long help.
func (c *restoreCmd) Help() string {
	return `Writes a backup into a member that does not exist yet (--as names it; by
default the backed-up member's id): its client records, each group as a new
group (version 0), then its registry record and group memberships, and
makes Welcomes for its stored key packages reach it. --as changes the id
the member is hosted under, not its MLS identity (its credential in its
groups and key packages). A restore that fails before the registry is
written removes what it wrote.

Each group's worker cursor is dropped unless --keep-cursor: a cursor holds
the log sequence of the last input applied and what that input published,
which mean nothing in another deployment's log (a sequence there could
make a worker skip new inputs as already applied). Keep it only to restore
into the deployment the backup came from.

After moving a member, delete the source (its groups with "mlsadmin
delete"), and never restore one backup twice: two live copies of a member
would send with the same keys and generations, which breaks MLS's
confidentiality, and the copy that lags would be refused as a replay.`
}

type restoreJSON struct {
	Member         string `json:"member"`
	FromMember     string `json:"from_member"`
	Groups         int    `json:"groups"`
	ClientRecords  int    `json:"client_records"`
	GroupRecords   int    `json:"group_records"`
	CursorsDropped int    `json:"cursors_dropped"`
	BackupCreated  string `json:"backup_created"` // RFC 3339
}

func (c *restoreCmd) Run(e *env) error {
	ids, err := c.identities()
	if err != nil {
		return err
	}
	doc, err := readBackup(c.File, ids)
	if err != nil {
		return err
	}
	defer doc.clear()
	member := cmp.Or(c.As, doc.Member)
	if err := events.ValidMember(member); err != nil {
		return usageErr(fmt.Errorf("member id %q: %w", member, err))
	}
	s, err := c.connect(e.ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	out, err := restore(e, s, doc, member, c.KeepCursor)
	if err != nil {
		return err
	}
	if e.json {
		return writeJSON(e.stdout, out)
	}
	fmt.Fprintf(e.stdout, "restored member %s (backup of %s) as %s: %s, %s, %s", doc.Member, out.BackupCreated, member,
		plural(out.Groups, "group"), plural(out.GroupRecords, "group record"), plural(out.ClientRecords, "client record"))
	if out.CursorsDropped > 0 {
		fmt.Fprintf(e.stdout, ", %s dropped", plural(out.CursorsDropped, "worker cursor"))
	}
	fmt.Fprintln(e.stdout)
	fmt.Fprintf(e.stdout, "delete the source member %s's groups if it still runs: two live copies would reuse keys\n", doc.Member)
	return nil
}

func (c *restoreCmd) identities() ([]age.Identity, error) {
	if c.PassphraseFile != "" {
		pass, err := readPassphrase(c.PassphraseFile)
		if err != nil {
			return nil, err
		}
		id, err := age.NewScryptIdentity(pass)
		if err != nil {
			return nil, usageErr(err)
		}
		return []age.Identity{id}, nil
	}
	f, err := os.Open(c.Identity)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return nil, usageErr(fmt.Errorf("%s: %w", c.Identity, err))
	}
	return ids, nil
}

// restore writes the document into member, which must not exist yet.
func restore(e *env, s *session, doc *backupDoc, member string, keepCursor bool) (*restoreJSON, error) {
	ctx := e.ctx
	out := &restoreJSON{Member: member, FromMember: doc.Member, Groups: len(doc.Groups), ClientRecords: len(doc.Client),
		BackupCreated: time.Unix(doc.Created, 0).UTC().Format(time.RFC3339)}
	reg, err := s.registry(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := reg.Member(ctx, member); err == nil {
		return nil, fmt.Errorf("member %s exists already: restore into a new member (--as)", member)
	} else if !errors.Is(err, worker.ErrUnknownMember) {
		return nil, err
	}
	st, err := s.store(ctx, member)
	if err != nil {
		return nil, err
	}
	if err := mustBeEmpty(ctx, st, member, doc); err != nil {
		return nil, err
	}

	// The units: the client's records in as few units as the limits
	// allow, and each group in one unit that creates it.
	var clientUnits []*storage.Unit
	for _, r := range doc.Client {
		rec := storage.Record{Key: storage.Key{Scope: storage.ClientScope(), Class: r.Class, Name: r.Name}, Value: r.Value}
		u := lastOf(clientUnits)
		if u == nil || u.Ops()+1 > storage.MaxUnitRecords || u.Bytes()+len(r.Name)+len(r.Value) > storage.MaxUnitBytes {
			u = &storage.Unit{Scope: storage.ClientScope(), ID: unitID()}
			clientUnits = append(clientUnits, u)
		}
		u.Puts = append(u.Puts, rec)
	}
	groupUnits := make([]*storage.Unit, 0, len(doc.Groups))
	for _, g := range doc.Groups {
		u := &storage.Unit{Scope: storage.GroupScope(g.ID), ID: unitID()}
		for _, r := range g.Records {
			if r.Class == storage.Public && r.Name == engine.CursorRecordName && !keepCursor {
				out.CursorsDropped++
				continue
			}
			u.Puts = append(u.Puts, storage.Record{Key: storage.Key{Scope: u.Scope, Class: r.Class, Name: r.Name}, Value: r.Value})
		}
		out.GroupRecords += len(u.Puts)
		groupUnits = append(groupUnits, u)
	}
	for _, u := range append(append([]*storage.Unit(nil), clientUnits...), groupUnits...) {
		if err := u.Validate(); err != nil {
			return nil, fmt.Errorf("the backup does not make valid units: %w", err)
		}
	}

	bar := newProgress(e.stderr, len(clientUnits)+len(groupUnits)+1, "restore "+member)
	defer bar.done()
	var done rollback
	fail := func(err error) (*restoreJSON, error) {
		if rerr := done.undo(ctx, st); rerr != nil {
			return nil, fmt.Errorf("%w; and removing what was written failed: %v", err, rerr)
		}
		return nil, fmt.Errorf("%w (what was written of %s is removed)", err, member)
	}
	// Each unit is counted as written before it is applied: one whose
	// outcome stays unknown may have landed.
	for _, u := range clientUnits {
		done.client = append(done.client, u)
		if _, err := applyUnit(ctx, st, u); err != nil {
			return fail(fmt.Errorf("writing the client records: %w", err))
		}
		bar.add(1)
	}
	for i, u := range groupUnits {
		done.groups = append(done.groups, doc.Groups[i].ID)
		if _, err := applyUnit(ctx, st, u); err != nil {
			return fail(fmt.Errorf("writing group %s: %w", showID(doc.Groups[i].ID), err))
		}
		bar.add(1)
	}
	if err := reg.AddMember(ctx, member, doc.Info); err != nil {
		return fail(fmt.Errorf("registering %s: %w", member, err))
	}
	// From here on the member exists: a failure is reported, not undone.
	for _, g := range doc.Groups {
		if err := reg.Join(ctx, g.ID, member); err != nil {
			return nil, fmt.Errorf("member %s is restored, but recording it in group %s failed (restore cannot be repeated; record it by hand or delete the member's state): %w",
				member, showID(g.ID), err)
		}
	}
	for _, r := range doc.Client {
		if ref, ok := strings.CutPrefix(r.Name, "key-package/"); ok && r.Class == storage.Public {
			if err := reg.KeyPackage(ctx, ref, member); err != nil {
				return nil, fmt.Errorf("member %s is restored, but routing its key package %s failed: %w", member, ref, err)
			}
		}
	}
	bar.add(1)
	return out, nil
}

// unitID draws a unit's id. crypto/rand does not fail (Go 1.24).
func unitID() storage.UnitID {
	id, err := storage.NewUnitID(rand.Reader)
	if err != nil {
		panic("internal error: " + err.Error())
	}
	return id
}

func lastOf(us []*storage.Unit) *storage.Unit {
	if len(us) == 0 {
		return nil
	}
	return us[len(us)-1]
}

// mustBeEmpty checks that the store holds nothing of the member: no
// client record and none of the backup's groups.
func mustBeEmpty(ctx context.Context, st *jetstore.Store, member string, doc *backupDoc) error {
	for _, class := range []storage.Class{storage.Public, storage.KeyMaterial} {
		rs, err := st.List(ctx, storage.ClientScope(), class, "")
		if err != nil {
			return err
		}
		for _, r := range rs {
			clear(r.Value)
		}
		if len(rs) > 0 {
			return fmt.Errorf("the store holds client records of %s though the registry does not know it (a failed restore?): restore under another id (--as)", member)
		}
	}
	for _, g := range doc.Groups {
		_, err := st.Version(ctx, g.ID)
		switch {
		case err == nil:
			return fmt.Errorf("the store holds group %s of %s already: restore under another id (--as)", showID(g.ID), member)
		case !errors.Is(err, storage.ErrGroupNotFound):
			return err
		}
	}
	return nil
}

// rollback is what a restore wrote (or may have), to remove if it fails.
type rollback struct {
	client []*storage.Unit
	groups [][]byte
}

// undo deletes the groups and client records written (their key material
// is erased by the store), even when ctx was cancelled.
func (r *rollback) undo(ctx context.Context, st storage.Backend) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var errs []error
	for _, id := range r.groups {
		v, err := st.Version(ctx, id)
		if errors.Is(err, storage.ErrGroupNotFound) {
			continue
		}
		if err == nil {
			u := &storage.Unit{Scope: storage.GroupScope(id), Version: v, ID: unitID(), DeleteGroup: true}
			_, err = applyUnit(ctx, st, u)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("group %s: %w", showID(id), err))
		}
	}
	for _, w := range r.client {
		u := &storage.Unit{Scope: storage.ClientScope(), ID: unitID()}
		for _, p := range w.Puts {
			u.Deletes = append(u.Deletes, p.Key)
		}
		if _, err := applyUnit(ctx, st, u); err != nil {
			errs = append(errs, fmt.Errorf("client records: %w", err))
		}
	}
	return errors.Join(errs...)
}
