// Package natsrv starts an embedded NATS server with JetStream for tests and
// for mlsworker's default mode, and connects to real servers or clusters by
// URL with credentials and TLS.
package natsrv

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Errors returned by this package; match them with errors.Is. They are
// wrapped with detail that never includes a password, token or seed.
var (
	// ErrOptions: the options are incomplete or contradict each other
	// (no store directory, two authentication methods, a TLS certificate
	// without its key, ...). Nothing was started or dialed.
	ErrOptions = errors.New("natsrv: invalid options")
	// ErrStart: the embedded server did not come up (port in use, JetStream
	// store unusable, timeout).
	ErrStart = errors.New("natsrv: embedded server failed to start")
	// ErrConnect: the connection to a server could not be established.
	ErrConnect = errors.New("natsrv: connect failed")
)

// defaultStartTimeout bounds StartEmbedded when ctx has no deadline. Recovery
// of a large JetStream store is the slow part of a start; ten seconds is
// ample for test and single-node worker stores.
const defaultStartTimeout = 10 * time.Second

// EmbeddedOptions configures StartEmbedded.
type EmbeddedOptions struct {
	// Dir is the store directory, required. The server keeps its JetStream
	// data in Dir/jetstream; starting again on the same Dir recovers it.
	Dir string
	// Host is the interface to listen on; default 127.0.0.1 so that other
	// local processes can connect without exposing the server.
	Host string
	// Port is the client port; 0 picks a free port. (The server itself
	// reads 0 as 4222; this package translates 0 to server.RANDOM_PORT.)
	Port int
	// ServerName names the server in logs and JetStream metadata; default is
	// the server's generated public key.
	ServerName string
	// SyncAlways makes the server fsync every JetStream write before
	// acknowledging it: no acknowledged message is lost on power failure or
	// kernel crash, at a large cost in write throughput. Without it, writes
	// reach the OS page cache before the acknowledgement (surviving a crash
	// of this process) and are fsynced every SyncInterval.
	SyncAlways bool
	// SyncInterval is how often the server fsyncs in the background when
	// SyncAlways is off; 0 means the server default (2 minutes), the window
	// of acknowledged writes a machine crash can lose.
	SyncInterval time.Duration
	// MaxPayload is the largest message in bytes; 0 means the server default
	// (1 MiB).
	MaxPayload int32
	// Users, if set, requires clients to authenticate with one of these
	// usernames and passwords. Mutually exclusive with Token.
	Users []*server.User
	// Token, if set, requires clients to present this token.
	Token string
	// TLSConfig, if set, makes the server require TLS on client connections.
	TLSConfig *tls.Config
	// Logger receives the server's log. Notices and debug lines go out at
	// debug level, warnings and errors at their own. Nil discards the log.
	Logger *slog.Logger
}

func (o EmbeddedOptions) validate() error {
	if o.Dir == "" {
		return fmt.Errorf("%w: Dir is required", ErrOptions)
	}
	if len(o.Users) > 0 && o.Token != "" {
		return fmt.Errorf("%w: set Users or Token, not both", ErrOptions)
	}
	if o.Port < -1 || o.Port > 65535 {
		return fmt.Errorf("%w: Port %d out of range", ErrOptions, o.Port)
	}
	if o.SyncInterval < 0 || o.MaxPayload < 0 {
		return fmt.Errorf("%w: SyncInterval and MaxPayload must not be negative", ErrOptions)
	}
	return nil
}

func (o EmbeddedOptions) serverOptions() *server.Options {
	host := o.Host
	if host == "" {
		host = "127.0.0.1"
	}
	port := o.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	so := &server.Options{
		ServerName:   o.ServerName,
		Host:         host,
		Port:         port,
		JetStream:    true,
		StoreDir:     o.Dir,
		SyncAlways:   o.SyncAlways,
		SyncInterval: o.SyncInterval,
		MaxPayload:   o.MaxPayload,
		Users:        o.Users,
		// Authorization is the server's name for the client token.
		Authorization: o.Token,
		// The host process owns signal handling; the server must not exit
		// it on SIGTERM.
		NoSigs:                 true,
		DisableJetStreamBanner: true,
	}
	if o.TLSConfig != nil {
		// The server may adjust the config it is given; keep the caller's
		// (reused by Restart) untouched.
		so.TLSConfig = o.TLSConfig.Clone()
	}
	return so
}

// Embedded is a NATS server with JetStream running in this process.
type Embedded struct {
	opts EmbeddedOptions // Port is fixed to the bound port after the first start.

	mu  sync.Mutex
	srv *server.Server
}

// StartEmbedded starts a server as o describes and returns once it accepts
// client connections. If ctx has no deadline, the start is bounded to 10
// seconds.
func StartEmbedded(ctx context.Context, o EmbeddedOptions) (*Embedded, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	srv, err := start(ctx, o)
	if err != nil {
		return nil, err
	}
	// Restart must come back on the same port so that clients reconnect.
	if addr, ok := srv.Addr().(*net.TCPAddr); ok {
		o.Port = addr.Port
	}
	return &Embedded{opts: o, srv: srv}, nil
}

func start(ctx context.Context, o EmbeddedOptions) (*server.Server, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStartTimeout)
		defer cancel()
	}
	srv, err := server.NewServer(o.serverOptions())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStart, err)
	}
	logger := newServerLogger(o.Logger)
	// Trace stays off whatever the level: it logs client CONNECT lines,
	// which carry passwords and tokens.
	srv.SetLogger(logger, logger.debug, false)

	// Start is synchronous (JetStream recovery included) and reports
	// failures only through the logger's Fatalf, so run it aside and
	// watch both.
	started := make(chan struct{})
	go func() {
		defer close(started)
		srv.Start()
	}()

	select {
	case <-started:
	case <-ctx.Done():
		// Shutting down halfway through Start is not safe; stop the
		// server once Start is done with it.
		go func() {
			<-started
			srv.Shutdown()
			srv.WaitForShutdown()
		}()
		return nil, fmt.Errorf("%w: %w", ErrStart, ctx.Err())
	}

	fail := func(err error) (*server.Server, error) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("%w: %w", ErrStart, err)
	}
	if msg := logger.fatalMessage(); msg != "" {
		return fail(errors.New(msg))
	}
	wait := time.Until(deadline(ctx))
	if wait <= 0 {
		return fail(ctx.Err())
	}
	if !srv.ReadyForConnections(wait) {
		if msg := logger.fatalMessage(); msg != "" {
			return fail(errors.New(msg))
		}
		return fail(fmt.Errorf("not ready for connections after %s", wait))
	}
	if !srv.JetStreamEnabled() {
		return fail(errors.New("JetStream not enabled"))
	}
	return srv, nil
}

func deadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// ClientURL is the URL clients connect to (tls:// when TLSConfig is set).
func (e *Embedded) ClientURL() string { return e.Server().ClientURL() }

// Server is the running server, for what this package does not wrap. After
// Restart it is a different value.
func (e *Embedded) Server() *server.Server {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.srv
}

// StoreDir is the JetStream store directory, Dir/jetstream.
func (e *Embedded) StoreDir() string { return e.Server().StoreDir() }

// Connect opens a client connection over TCP, so that the connection
// behaves as a remote one (reconnects, TLS, auth). Pass nats.UserInfo,
// nats.Token or TLS options when the server requires them.
func (e *Embedded) Connect(opts ...nats.Option) (*nats.Conn, error) {
	nc, err := nats.Connect(e.ClientURL(), opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConnect, err)
	}
	return nc, nil
}

// Shutdown stops the server and waits until it has flushed and closed its
// store. Calling it again does nothing.
func (e *Embedded) Shutdown() {
	srv := e.Server()
	srv.Shutdown()
	srv.WaitForShutdown()
}

// Restart shuts the server down and starts a new one on the same store
// directory and port, as a process restart would. Clients with reconnects
// enabled reconnect to it.
func (e *Embedded) Restart(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	srv, err := start(ctx, e.opts)
	if err != nil {
		return err
	}
	e.srv = srv
	return nil
}

// serverLogger adapts the server's Logger interface to slog and captures
// the first fatal error, which is the only way Start reports failures.
type serverLogger struct {
	log   *slog.Logger
	debug bool

	mu    sync.Mutex
	fatal string
}

func newServerLogger(l *slog.Logger) *serverLogger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &serverLogger{
		log:   l.With("component", "nats-server"),
		debug: l.Enabled(context.Background(), slog.LevelDebug),
	}
}

func (l *serverLogger) fatalMessage() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatal
}

func (l *serverLogger) logf(level slog.Level, format string, v []any) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	l.log.Log(context.Background(), level, fmt.Sprintf(format, v...))
}

// Notices are the server's normal chatter (startup banners, listen
// addresses); the host application's own logs should dominate.
func (l *serverLogger) Noticef(format string, v ...any) { l.logf(slog.LevelDebug, format, v) }
func (l *serverLogger) Debugf(format string, v ...any)  { l.logf(slog.LevelDebug, format, v) }
func (l *serverLogger) Tracef(format string, v ...any)  { l.logf(slog.LevelDebug-4, format, v) }
func (l *serverLogger) Warnf(format string, v ...any)   { l.logf(slog.LevelWarn, format, v) }
func (l *serverLogger) Errorf(format string, v ...any)  { l.logf(slog.LevelError, format, v) }

// Fatalf must not exit: the server calls it for failures it expects the
// embedding program to handle.
func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.mu.Lock()
	if l.fatal == "" {
		l.fatal = msg
	}
	l.mu.Unlock()
	l.log.Error(msg)
}
