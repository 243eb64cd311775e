package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/events"
	"github.com/mlsengine/mlsengine/jetstore"
	"github.com/mlsengine/mlsengine/natsrv"
	"github.com/mlsengine/mlsengine/worker"
)

// connFlags are the flags of every command that reaches a deployment: its
// NATS server, its subjects' prefix and the root key its workers wrap the
// members' secrets with. They and their environment variables are the
// worker's (cmd/mlsworker).
type connFlags struct {
	NATS        string        `name:"nats" placeholder:"URL" env:"MLS_NATS_URL" default:"nats://127.0.0.1:4222" help:"NATS server or cluster URL(s), comma-separated (an embedded-mode worker listens on the default)."`
	User        string        `name:"user" env:"MLS_NATS_USER" help:"NATS user."`
	Password    string        `name:"password" env:"MLS_NATS_PASSWORD" help:"NATS password."`
	Token       string        `name:"token" env:"MLS_NATS_TOKEN" help:"NATS token."`
	NKey        string        `name:"nkey" placeholder:"FILE" env:"MLS_NATS_NKEY" help:"File of an NKey seed." type:"path"`
	Creds       string        `name:"creds" placeholder:"FILE" env:"MLS_NATS_CREDS" help:"NATS credentials file." type:"path"`
	TLSCA       string        `name:"tls-ca" placeholder:"FILE" env:"MLS_NATS_TLS_CA" help:"CA certificates for the server's certificate." type:"path"`
	TLSCert     string        `name:"tls-cert" placeholder:"FILE" env:"MLS_NATS_TLS_CERT" help:"Client certificate." type:"path"`
	TLSKey      string        `name:"tls-key" placeholder:"FILE" env:"MLS_NATS_TLS_KEY" help:"Client certificate's key." type:"path"`
	Prefix      string        `name:"prefix" env:"MLS_PREFIX" default:"mls" help:"First token of every subject."`
	RootKeyFile string        `name:"root-key-file" placeholder:"FILE" env:"MLS_ROOT_KEY_FILE" help:"File of the workers' root key (mode 0600). Or set MLS_ROOT_KEY (hex). With neither, <data>/root.key, where an embedded-mode worker generates it." type:"path"`
	Data        string        `name:"data" placeholder:"DIR" env:"MLS_DATA" default:"mlsworker-data" help:"The embedded-mode worker's data directory, for its root key." type:"path"`
	Timeout     time.Duration `name:"timeout" env:"MLS_TIMEOUT" default:"30s" help:"How long to wait for the worker's answer to a command (or for each step of demo)."`
}

// rootKey reads the root key: --root-key-file, MLS_ROOT_KEY, or
// <data>/root.key, in that order.
func (f *connFlags) rootKey() ([]byte, error) {
	switch {
	case f.RootKeyFile != "":
		return jetstore.LoadRootKeyFile(f.RootKeyFile)
	case os.Getenv("MLS_ROOT_KEY") != "":
		return jetstore.LoadRootKeyEnv("MLS_ROOT_KEY")
	}
	path := filepath.Join(f.Data, "root.key")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no root key: give --root-key-file or MLS_ROOT_KEY, or --data the worker's data directory (%s does not exist)", path)
	}
	return jetstore.LoadRootKeyFile(path)
}

// session is a connection to a deployment and what the commands open on
// it, closed together.
type session struct {
	f      *connFlags
	nc     *nats.Conn
	js     jetstream.JetStream
	s      events.Subjects
	root   []byte
	reg    *worker.Registry
	c      *events.Client
	stores []*jetstore.Store
}

func (f *connFlags) connect(ctx context.Context) (*session, error) {
	nc, err := natsrv.Connect(ctx, natsrv.ConnectOptions{URL: f.NATS, Name: "mlsadmin", User: f.User, Password: f.Password, Token: f.Token,
		NKeySeedFile: f.NKey, CredsFile: f.Creds, TLSCA: f.TLSCA, TLSCert: f.TLSCert, TLSKey: f.TLSKey})
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &session{f: f, nc: nc, js: js, s: events.Subjects{Prefix: f.Prefix}}, nil
}

// Close closes the stores, the events client and the connection, and
// clears the root key.
func (s *session) Close() {
	for _, st := range s.stores {
		st.Close()
	}
	if s.c != nil {
		s.c.Close()
	}
	clear(s.root)
	s.nc.Close()
}

// prefix is the subjects' first token.
func (s *session) prefix() string {
	if s.s.Prefix == "" {
		return events.DefaultPrefix
	}
	return s.s.Prefix
}

// registry binds the workers' registry.
func (s *session) registry(ctx context.Context) (*worker.Registry, error) {
	if s.reg == nil {
		reg, err := worker.OpenRegistry(ctx, s.js, "")
		if err != nil {
			return nil, err
		}
		s.reg = reg
	}
	return s.reg, nil
}

// member checks that m is a hosted member and returns its record.
func (s *session) member(ctx context.Context, m string) (*worker.MemberInfo, error) {
	if err := events.ValidMember(m); err != nil {
		return nil, usageErr(err)
	}
	reg, err := s.registry(ctx)
	if err != nil {
		return nil, err
	}
	info, err := reg.Member(ctx, m)
	if errors.Is(err, worker.ErrUnknownMember) {
		return nil, fmt.Errorf("member %s: %w", m, err)
	}
	return info, err
}

// store opens a member's jetstore without a sweeper: mlsadmin does not
// race the workers for unfinished units.
func (s *session) store(ctx context.Context, m string) (*jetstore.Store, error) {
	if s.root == nil {
		root, err := s.f.rootKey()
		if err != nil {
			return nil, err
		}
		s.root = root
	}
	st, err := jetstore.Open(ctx, s.js, jetstore.Options{Member: m, RootKey: s.root, SweepInterval: -1})
	if err != nil {
		return nil, err
	}
	s.stores = append(s.stores, st)
	return st, nil
}

// group loads a hosted member's group, and its store.
func (s *session) group(ctx context.Context, m string, gid []byte) (*engine.Group, *jetstore.Store, error) {
	if _, err := s.member(ctx, m); err != nil {
		return nil, nil, err
	}
	st, err := s.store(ctx, m)
	if err != nil {
		return nil, nil, err
	}
	h, err := engine.LoadGroup(ctx, st, gid)
	if err != nil {
		return nil, nil, groupErr(m, gid, err)
	}
	return h, st, nil
}

// groupErr says which member's group is missing.
func groupErr(m string, gid []byte, err error) error {
	if errors.Is(err, engine.ErrGroupNotFound) {
		return fmt.Errorf("member %s has no group %s: %w", m, showID(gid), engine.ErrGroupNotFound)
	}
	return err
}

// client is an events client, reading events from now on.
func (s *session) client(ctx context.Context) (*events.Client, error) {
	if s.c == nil {
		c, err := events.NewClient(ctx, s.js, s.s, "")
		if err != nil {
			return nil, fmt.Errorf("%w (has a worker run on this server?)", err)
		}
		s.c = c
	}
	return s.c, nil
}

// do sends a command through the log and waits, at most the timeout, for
// its result. A result that is not OK is an error naming its code, which
// matches worker.ErrUnknownMember or engine.ErrGroupNotFound where the
// code says so.
func (s *session) do(ctx context.Context, cmd *events.Command) (*events.Result, error) {
	c, err := s.client(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.f.Timeout)
	defer cancel()
	r, err := c.Do(ctx, cmd)
	if err != nil {
		return nil, fmt.Errorf("%w (is a worker running?)", err)
	}
	if r.OK {
		return r, nil
	}
	err = fmt.Errorf("%s for %s: %s: %s", cmd.Kind, cmd.Member, r.Code, r.Error)
	switch r.Code {
	case events.CodeUnknownMember:
		err = fmt.Errorf("%w: %w", err, worker.ErrUnknownMember)
	case events.CodeNotMember:
		err = fmt.Errorf("%w: %w", err, engine.ErrGroupNotFound)
	}
	return r, err
}
