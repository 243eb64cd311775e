package natsrv

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// ConnectOptions describes a connection to a NATS server or cluster. At most
// one authentication method may be set: User (with Password), Token,
// NKeySeedFile, CredsFile, or credentials in the URL.
type ConnectOptions struct {
	// URL is the server URL, or a comma-separated list of a cluster's
	// servers (nats://, tls://). Required.
	URL string
	// Name identifies the connection in the server's monitoring.
	Name string
	// User and Password authenticate with a username and password.
	User, Password string
	// Token authenticates with a token.
	Token string
	// NKeySeedFile is a file holding an NKey user seed.
	NKeySeedFile string
	// CredsFile is a decentralized-auth credentials file (JWT and seed).
	CredsFile string
	// TLSCA is a PEM file of CAs that verify the server; TLSCert and TLSKey
	// are a PEM client certificate and key for servers that verify clients.
	// Any of them turns TLS on.
	TLSCA, TLSCert, TLSKey string
	// TLSInsecure turns TLS on without verifying the server. For tests only.
	TLSInsecure bool
	// Timeout bounds each dial and handshake; 0 means the client default (2
	// s). A deadline on Connect's ctx shortens it.
	Timeout time.Duration
	// MaxReconnects is how many times the connection tries to reconnect
	// after losing its server; 0 means the client default (60), negative
	// means forever.
	MaxReconnects int
}

const redacted = "[REDACTED]"

// Redacted describes o for logs: the URL with any password replaced,
// which authentication and TLS files are used, never a secret.
func (o ConnectOptions) Redacted() string {
	var b strings.Builder
	fmt.Fprintf(&b, "url=%s", redactURLs(o.URL))
	if o.Name != "" {
		fmt.Fprintf(&b, " name=%q", o.Name)
	}
	switch {
	case o.User != "" || o.Password != "":
		fmt.Fprintf(&b, " auth=user user=%q", o.User)
	case o.Token != "":
		b.WriteString(" auth=token")
	case o.NKeySeedFile != "":
		fmt.Fprintf(&b, " auth=nkey seed_file=%q", o.NKeySeedFile)
	case o.CredsFile != "":
		fmt.Fprintf(&b, " auth=creds creds_file=%q", o.CredsFile)
	}
	if o.TLSCA != "" {
		fmt.Fprintf(&b, " tls_ca=%q", o.TLSCA)
	}
	if o.TLSCert != "" {
		fmt.Fprintf(&b, " tls_cert=%q tls_key=%q", o.TLSCert, o.TLSKey)
	}
	if o.TLSInsecure {
		b.WriteString(" tls_insecure=true")
	}
	return b.String()
}

// redactURLs replaces the password (or lone token) of each URL in a
// comma-separated list. Unparseable entries are hidden entirely, since
// they might be a secret typed into the wrong field.
func redactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		u, err := url.Parse(p)
		switch {
		case err != nil:
			parts[i] = redacted
		case u.User == nil:
			parts[i] = p
		default:
			if _, hasPass := u.User.Password(); hasPass {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
			} else {
				// A lone user part is how NATS URLs carry a token.
				u.User = url.User("xxxxx")
			}
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

func urlsHaveUserInfo(list string) bool {
	for p := range strings.SplitSeq(list, ",") {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			return true
		}
	}
	return false
}

func (o ConnectOptions) validate() error {
	if strings.TrimSpace(o.URL) == "" {
		return fmt.Errorf("%w: URL is required", ErrOptions)
	}
	var methods []string
	if o.User != "" || o.Password != "" {
		if o.User == "" {
			return fmt.Errorf("%w: Password without User", ErrOptions)
		}
		methods = append(methods, "User/Password")
	}
	if o.Token != "" {
		methods = append(methods, "Token")
	}
	if o.NKeySeedFile != "" {
		methods = append(methods, "NKeySeedFile")
	}
	if o.CredsFile != "" {
		methods = append(methods, "CredsFile")
	}
	if urlsHaveUserInfo(o.URL) {
		methods = append(methods, "credentials in URL")
	}
	if len(methods) > 1 {
		return fmt.Errorf("%w: more than one authentication method: %s", ErrOptions, strings.Join(methods, ", "))
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return fmt.Errorf("%w: TLSCert and TLSKey go together", ErrOptions)
	}
	if o.Timeout < 0 {
		return fmt.Errorf("%w: negative Timeout", ErrOptions)
	}
	return nil
}

// natsOptions translates o. Files (CA, certificate, seed, creds) are read
// by the client's own options, which read them again on every reconnect so
// that rotated certificates and credentials take effect.
func (o ConnectOptions) natsOptions() ([]nats.Option, error) {
	var opts []nats.Option
	if o.Name != "" {
		opts = append(opts, nats.Name(o.Name))
	}
	if o.Timeout > 0 {
		opts = append(opts, nats.Timeout(o.Timeout))
	}
	if o.MaxReconnects != 0 {
		opts = append(opts, nats.MaxReconnects(max(o.MaxReconnects, -1)))
	}
	switch {
	case o.User != "":
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	case o.Token != "":
		opts = append(opts, nats.Token(o.Token))
	case o.NKeySeedFile != "":
		opt, err := nats.NkeyOptionFromSeed(o.NKeySeedFile)
		if err != nil {
			// The client's message names the file and the parse failure,
			// not the seed.
			return nil, fmt.Errorf("%w: NKey seed file %q: %w", ErrOptions, o.NKeySeedFile, err)
		}
		opts = append(opts, opt)
	case o.CredsFile != "":
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	// Secure first: RootCAs and ClientCert only create a TLS config when
	// none is set, so this order keeps InsecureSkipVerify.
	if o.TLSInsecure {
		opts = append(opts, nats.Secure(&tls.Config{
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: true, // the caller asked for it; documented as tests only
		}))
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if o.TLSCert != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	return opts, nil
}

// Connect dials the server or cluster o describes. The client library has
// no context-aware dial, so ctx's deadline caps o.Timeout and a
// cancellation abandons the dial (closing the connection if it completes).
// Errors never include a password, token or seed.
func Connect(ctx context.Context, o ConnectOptions) (*nats.Conn, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	opts, err := o.natsOptions()
	if err != nil {
		return nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		left := time.Until(d)
		if left <= 0 {
			return nil, o.connectError(ctx.Err())
		}
		timeout := o.Timeout
		if timeout == 0 {
			timeout = nats.DefaultTimeout
		}
		if left < timeout {
			opts = append(opts, nats.Timeout(left))
		}
	}

	type result struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(o.URL, opts...)
		done <- result{nc, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, o.connectError(r.err)
		}
		return r.nc, nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, o.connectError(ctx.Err())
	}
}

func (o ConnectOptions) connectError(err error) error {
	return &ConnectError{URL: redactURLs(o.URL), msg: scrub(err.Error(), o.secrets()), err: err}
}

func (o ConnectOptions) secrets() []string {
	s := []string{o.Password, o.Token}
	for p := range strings.SplitSeq(o.URL, ",") {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok {
				s = append(s, pw)
			} else {
				s = append(s, u.User.Username()) // a token
			}
		}
	}
	return s
}

// scrub removes secrets from an error message. The client does not put
// them there today; this keeps it so if a dependency ever does.
func scrub(msg string, secrets []string) string {
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, redacted)
		}
	}
	return msg
}

// ConnectError reports a failed Connect. It matches ErrConnect and, through
// Unwrap, the client's error (nats.ErrAuthorization, nats.ErrNoServers,
// context.DeadlineExceeded, ...).
type ConnectError struct {
	// URL is the URL list with passwords redacted.
	URL string
	msg string
	err error
}

// Error returns the redacted URL and the scrubbed cause.
func (e *ConnectError) Error() string {
	return fmt.Sprintf("natsrv: connect to %s: %s", e.URL, e.msg)
}

// Unwrap returns ErrConnect and the client's error.
func (e *ConnectError) Unwrap() []error { return []error{ErrConnect, e.err} }
