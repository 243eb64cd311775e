package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/mlsengine/mlsengine/storage"
	"github.com/mlsengine/mlsengine/worker"
)

// A backup is one MessagePack document, encrypted with age (X25519
// recipients or an scrypt passphrase): the member's registry record, every
// client-scope record of both classes, and every group the registry lists
// it in, with all the group's records as of one version. It holds the
// member's secrets (signature key, epoch secrets, HPKE private keys, key
// packages' private keys) in the clear inside the encryption.
//
//	{format: 1, member, created (Unix seconds), info: MemberInfo,
//	 client: [{c: class, n: name, v: value}, ...],
//	 groups: [{id, version, records: [{c, n, v}, ...]}, ...]}
const backupFormat = 1

type backupDoc struct {
	Format  int               `msgpack:"format"`
	Member  string            `msgpack:"member"`
	Created int64             `msgpack:"created"`
	Info    worker.MemberInfo `msgpack:"info"`
	Client  []backupRecord    `msgpack:"client"`
	Groups  []backupGroup     `msgpack:"groups"`
}

type backupRecord struct {
	Class storage.Class `msgpack:"c"`
	Name  string        `msgpack:"n"`
	Value []byte        `msgpack:"v"`
}

type backupGroup struct {
	ID      []byte         `msgpack:"id"`
	Version uint64         `msgpack:"version"` // where it was read; a restore writes version 0 anew
	Records []backupRecord `msgpack:"records"`
}

// clear overwrites every value (best effort: Go may have copied them).
func (d *backupDoc) clear() {
	for i := range d.Client {
		clear(d.Client[i].Value)
	}
	for _, g := range d.Groups {
		for i := range g.Records {
			clear(g.Records[i].Value)
		}
	}
}

func toBackup(rs []storage.Record) []backupRecord {
	out := make([]backupRecord, 0, len(rs))
	for _, r := range rs {
		out = append(out, backupRecord{Class: r.Key.Class, Name: r.Key.Name, Value: r.Value})
	}
	return out
}

type backupCmd struct {
	connFlags      `embed:"" group:"connection"`
	Member         string   `arg:"" help:"Hosted member."`
	Out            string   `name:"out" short:"o" placeholder:"FILE" required:"" type:"path" help:"File to write (mode 0600)."`
	Recipient      []string `name:"recipient" short:"r" placeholder:"AGE_PUBKEY" xor:"key" required:"" help:"age public key (age1...) to encrypt to; repeatable. Or --passphrase-file."`
	PassphraseFile string   `name:"passphrase-file" placeholder:"FILE" xor:"key" required:"" type:"existingfile" help:"File whose first line is the passphrase to encrypt with (age scrypt). Or --recipient."`
	Force          bool     `name:"force" help:"Overwrite FILE if it exists."`
}

// Help is the command's long help.
func (c *backupCmd) Help() string {
	return `Writes the member's whole state as one age-encrypted file: its registry
record, every client-scope record (signature key, key packages, external
PSKs) and every group the registry lists it in, each as of one version.
The file holds the member's secrets: keep it like the root key.

Groups are read one at a time while the workers may apply messages: each
group is consistent, the set is not a snapshot of one instant. Stop the
member's traffic first for a backup of one instant.

Restore it with "mlsadmin restore". After moving a member with a backup,
delete the source (its groups with "mlsadmin delete"): two live copies of
a member would reuse its keys.`
}

type backupJSON struct {
	Member        string   `json:"member"`
	File          string   `json:"file"`
	Bytes         int64    `json:"bytes"`
	Groups        int      `json:"groups"`
	ClientRecords int      `json:"client_records"`
	GroupRecords  int      `json:"group_records"`
	Skipped       []string `json:"skipped_groups"`
}

func (c *backupCmd) Run(e *env) error {
	recipients, err := c.recipients()
	if err != nil {
		return err
	}
	if _, err := os.Lstat(c.Out); err == nil && !c.Force {
		return fmt.Errorf("%s exists (--force overwrites it)", c.Out)
	}
	s, err := c.connect(e.ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	doc, skipped, err := readMember(e, s, c.Member)
	if err != nil {
		return err
	}
	defer doc.clear()
	n, err := writeBackup(c.Out, doc, recipients)
	if err != nil {
		return err
	}
	out := backupJSON{Member: c.Member, File: c.Out, Bytes: n, Groups: len(doc.Groups), ClientRecords: len(doc.Client), Skipped: []string{}}
	for _, g := range doc.Groups {
		out.GroupRecords += len(g.Records)
	}
	for _, id := range skipped {
		out.Skipped = append(out.Skipped, showID(id))
	}
	if e.json {
		return writeJSON(e.stdout, out)
	}
	fmt.Fprintf(e.stdout, "backed up member %s: %s, %s, %s, %d bytes in %s\n", c.Member,
		plural(out.Groups, "group"), plural(out.GroupRecords, "group record"), plural(out.ClientRecords, "client record"), out.Bytes, c.Out)
	return nil
}

// recipients parses --recipient or reads --passphrase-file.
func (c *backupCmd) recipients() ([]age.Recipient, error) {
	if c.PassphraseFile != "" {
		pass, err := readPassphrase(c.PassphraseFile)
		if err != nil {
			return nil, err
		}
		r, err := age.NewScryptRecipient(pass)
		if err != nil {
			return nil, usageErr(err)
		}
		return []age.Recipient{r}, nil
	}
	var out []age.Recipient
	for _, s := range c.Recipient {
		var r age.Recipient
		r, err := age.ParseX25519Recipient(s)
		if err != nil {
			h, herr := age.ParseHybridRecipient(s)
			if herr != nil {
				return nil, usageErr(fmt.Errorf("--recipient %q is not an age public key: %w", s, err))
			}
			r = h
		}
		out = append(out, r)
	}
	return out, nil
}

// readPassphrase reads a passphrase file's first line.
func readPassphrase(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	defer clear(b)
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", usageErr(fmt.Errorf("%s: empty passphrase", path))
	}
	return line, nil
}

// readMember reads a member's whole state; groups the registry lists but
// the store does not have are skipped (the registry can lag a deletion).
func readMember(e *env, s *session, member string) (*backupDoc, [][]byte, error) {
	ctx := e.ctx
	info, err := s.member(ctx, member)
	if err != nil {
		return nil, nil, err
	}
	all, err := s.reg.Memberships(ctx)
	if err != nil {
		return nil, nil, err
	}
	var ids [][]byte
	for id, ms := range all {
		if slices.Contains(ms, member) {
			ids = append(ids, []byte(id))
		}
	}
	slices.SortFunc(ids, func(a, b []byte) int { return strings.Compare(hex.EncodeToString(a), hex.EncodeToString(b)) })
	st, err := s.store(ctx, member)
	if err != nil {
		return nil, nil, err
	}
	doc := &backupDoc{Format: backupFormat, Member: member, Created: time.Now().Unix(), Info: *info}
	bar := newProgress(e.stderr, 1+len(ids), "backup "+member)
	defer bar.done()
	// The client records first: a group joined meanwhile then comes with
	// the key package it used up (harmless), never without it.
	for _, class := range []storage.Class{storage.Public, storage.KeyMaterial} {
		rs, err := st.List(ctx, storage.ClientScope(), class, "")
		if err != nil {
			doc.clear()
			return nil, nil, err
		}
		doc.Client = append(doc.Client, toBackup(rs)...)
	}
	bar.add(1)
	var skipped [][]byte
	for _, id := range ids {
		recs, err := st.Load(ctx, id)
		if errors.Is(err, storage.ErrGroupNotFound) {
			skipped = append(skipped, id)
			bar.println(e.stderr, fmt.Sprintf("mlsadmin: the registry lists %s in group %s, which its store does not have: skipped", member, showID(id)))
			bar.add(1)
			continue
		}
		if err != nil {
			doc.clear()
			return nil, nil, fmt.Errorf("group %s: %w", showID(id), err)
		}
		doc.Groups = append(doc.Groups, backupGroup{ID: id, Version: recs.Version, Records: toBackup(recs.Records)})
		bar.add(1)
	}
	return doc, skipped, nil
}

// writeBackup encrypts the document into a new file beside path (mode
// 0600), then renames it over path: a failure leaves no partial backup.
func writeBackup(path string, doc *backupDoc, recipients []age.Recipient) (int64, error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".mlsadmin-backup-*")
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return 0, err
	}
	w, err := age.Encrypt(f, recipients...)
	if err != nil {
		return 0, err
	}
	// Encoded straight into the encryption: no plaintext copy of the
	// whole document.
	enc := msgpack.NewEncoder(w)
	if err := enc.Encode(doc); err != nil {
		return 0, err
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, err
	}
	ok = true
	return fi.Size(), nil
}

// readBackup decrypts and decodes a backup.
func readBackup(path string, identities []age.Identity) (*backupDoc, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := age.Decrypt(f, identities...)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, fmt.Errorf("%s: the passphrase or identity does not open it: %w", path, err)
		}
		return nil, fmt.Errorf("%s: not an age-encrypted backup, or damaged: %w", path, err)
	}
	buf, err := io.ReadAll(r)
	defer clear(buf)
	if err != nil {
		return nil, fmt.Errorf("%s: damaged: %w", path, err)
	}
	var head struct {
		Format int `msgpack:"format"`
	}
	if err := msgpack.Unmarshal(buf, &head); err != nil {
		return nil, fmt.Errorf("%s: not a backup: %w", path, err)
	}
	if head.Format != backupFormat {
		return nil, fmt.Errorf("%s: backup format %d; this build reads %d", path, head.Format, backupFormat)
	}
	doc := new(backupDoc)
	// A bytes.Reader is a ByteScanner: the decoder reads the buffer in
	// place instead of through a buffer of its own, so clearing buf
	// clears the plaintext.
	br := bytes.NewReader(buf)
	d := msgpack.NewDecoder(br)
	d.DisallowUnknownFields(true)
	if err := d.Decode(doc); err != nil {
		doc.clear()
		return nil, fmt.Errorf("%s: not a backup: %w", path, err)
	}
	if br.Len() != 0 {
		doc.clear()
		return nil, fmt.Errorf("%s: %d bytes after the backup", path, br.Len())
	}
	return doc, nil
}

// applyUnit applies a unit, retrying it (same ID) while the outcome is
// unknown.
func applyUnit(ctx context.Context, st storage.Backend, u *storage.Unit) (uint64, error) {
	var err error
	for i := range 6 {
		var v uint64
		if v, err = st.Apply(ctx, u); !errors.Is(err, storage.ErrUnknownOutcome) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return 0, err
		case <-time.After(time.Duration(50<<i) * time.Millisecond):
		}
	}
	return 0, err
}
