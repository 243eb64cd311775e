package natsrv_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlsengine/mlsengine/natsrv"
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func startEmbedded(t *testing.T, o natsrv.EmbeddedOptions) *natsrv.Embedded {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	e, err := natsrv.StartEmbedded(testContext(t), o)
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(e.Shutdown)
	return e
}

func TestEmbeddedKeepsMessagesAcrossRestarts(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	e := startEmbedded(t, natsrv.EmbeddedOptions{Dir: dir, ServerName: "test"})
	if got, want := e.StoreDir(), filepath.Join(dir, "jetstream"); got != want {
		t.Errorf("StoreDir = %q, want %q", got, want)
	}
	if !strings.HasPrefix(e.ClientURL(), "nats://127.0.0.1:") {
		t.Errorf("ClientURL = %q, want nats://127.0.0.1:<port>", e.ClientURL())
	}

	nc, err := e.Connect()
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "S", Subjects: []string{"s.>"}, Storage: jetstream.FileStorage,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "s.one", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	nc.Close()

	url := e.ClientURL()
	if err := e.Restart(ctx); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if e.ClientURL() != url {
		t.Errorf("ClientURL after Restart = %q, want %q", e.ClientURL(), url)
	}
	checkMessage(ctx, t, e, "hello")

	// A fresh server on the same directory, as after a process restart.
	e.Shutdown()
	e2 := startEmbedded(t, natsrv.EmbeddedOptions{Dir: dir})
	checkMessage(ctx, t, e2, "hello")
}

func checkMessage(ctx context.Context, t *testing.T, e *natsrv.Embedded, want string) {
	t.Helper()
	nc, err := e.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, "S")
	if err != nil {
		t.Fatalf("stream after restart: %v", err)
	}
	m, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatalf("message after restart: %v", err)
	}
	if string(m.Data) != want {
		t.Fatalf("message = %q, want %q", m.Data, want)
	}
}

func TestStartEmbeddedPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = natsrv.StartEmbedded(testContext(t), natsrv.EmbeddedOptions{
		Dir:  t.TempDir(),
		Port: l.Addr().(*net.TCPAddr).Port,
	})
	if !errors.Is(err, natsrv.ErrStart) {
		t.Fatalf("err = %v, want ErrStart", err)
	}
	t.Log(err)
}

func TestStartEmbeddedOptions(t *testing.T) {
	_, err := natsrv.StartEmbedded(t.Context(), natsrv.EmbeddedOptions{})
	if !errors.Is(err, natsrv.ErrOptions) {
		t.Fatalf("no Dir: err = %v, want ErrOptions", err)
	}
}

func TestConnectUserPassword(t *testing.T) {
	const password = "correct-horse-battery"
	e := startEmbedded(t, natsrv.EmbeddedOptions{
		Users: []*server.User{{Username: "alice", Password: password}},
	})
	ctx := testContext(t)

	nc, err := natsrv.Connect(ctx, natsrv.ConnectOptions{
		URL: e.ClientURL(), Name: "test", User: "alice", Password: password,
	})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	nc.Close()

	const wrong = "wrong-password-1234"
	o := natsrv.ConnectOptions{URL: e.ClientURL(), User: "alice", Password: wrong, MaxReconnects: -1}
	_, err = natsrv.Connect(ctx, o)
	if err == nil {
		t.Fatal("Connect with a wrong password succeeded")
	}
	if !errors.Is(err, natsrv.ErrConnect) || !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("err = %v, want ErrConnect and nats.ErrAuthorization", err)
	}
	if strings.Contains(err.Error(), wrong) {
		t.Errorf("error %q contains the password", err)
	}
	t.Logf("wrong password: %v", err)
	if r := o.Redacted(); strings.Contains(r, wrong) || !strings.Contains(r, "alice") {
		t.Errorf("Redacted() = %q", r)
	}

	// Credentials in the URL work, and stay out of errors and logs.
	withPass := strings.Replace(e.ClientURL(), "nats://", "nats://alice:"+wrong+"@", 1)
	o = natsrv.ConnectOptions{URL: withPass}
	_, err = natsrv.Connect(ctx, o)
	if err == nil || strings.Contains(err.Error(), wrong) {
		t.Errorf("Connect with URL credentials: err = %v", err)
	}
	if r := o.Redacted(); strings.Contains(r, wrong) {
		t.Errorf("Redacted() = %q contains the password", r)
	}
	t.Logf("URL credentials: %v; Redacted: %s", err, o.Redacted())
}

func TestConnectToken(t *testing.T) {
	const token = "s3cr3t-token-value"
	e := startEmbedded(t, natsrv.EmbeddedOptions{Token: token})
	ctx := testContext(t)

	nc, err := natsrv.Connect(ctx, natsrv.ConnectOptions{URL: e.ClientURL(), Token: token})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	nc.Close()

	const wrong = "not-the-token"
	o := natsrv.ConnectOptions{URL: e.ClientURL(), Token: wrong}
	_, err = natsrv.Connect(ctx, o)
	if err == nil || strings.Contains(err.Error(), wrong) {
		t.Errorf("wrong token: err = %v", err)
	}
	if strings.Contains(o.Redacted(), wrong) {
		t.Errorf("Redacted() = %q contains the token", o.Redacted())
	}
}

func TestConnectOptionsValidation(t *testing.T) {
	const url = "nats://127.0.0.1:1"
	for name, o := range map[string]natsrv.ConnectOptions{
		"no URL":            {},
		"user and token":    {URL: url, User: "u", Password: "p", Token: "t"},
		"token and creds":   {URL: url, Token: "t", CredsFile: "x.creds"},
		"nkey and creds":    {URL: url, NKeySeedFile: "x.nk", CredsFile: "x.creds"},
		"URL user and user": {URL: "nats://u:p@127.0.0.1:1", User: "u", Password: "p"},
		"password alone":    {URL: url, Password: "p"},
		"cert without key":  {URL: url, TLSCert: "c.pem"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := natsrv.Connect(t.Context(), o)
			if !errors.Is(err, natsrv.ErrOptions) {
				t.Fatalf("err = %v, want ErrOptions", err)
			}
			t.Log(err)
			for _, secret := range []string{"p", "t"} {
				if strings.Contains(err.Error(), "="+secret) || strings.Contains(err.Error(), ":"+secret+"@") {
					t.Errorf("error %q may contain a secret", err)
				}
			}
		})
	}
}

func TestConnectHonorsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := natsrv.Connect(ctx, natsrv.ConnectOptions{URL: "nats://127.0.0.1:1"})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, natsrv.ErrConnect) {
		t.Fatalf("err = %v, want ErrConnect and context.Canceled", err)
	}
}

func TestConnectTLS(t *testing.T) {
	dir := t.TempDir()
	caFile, serverCert := newTestPKI(t, dir)
	e := startEmbedded(t, natsrv.EmbeddedOptions{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12},
	})
	ctx := testContext(t)
	if !strings.HasPrefix(e.ClientURL(), "tls://") {
		t.Errorf("ClientURL = %q, want tls://", e.ClientURL())
	}

	nc, err := natsrv.Connect(ctx, natsrv.ConnectOptions{URL: e.ClientURL(), TLSCA: caFile})
	if err != nil {
		t.Fatalf("Connect with TLSCA: %v", err)
	}
	if !nc.TLSRequired() {
		t.Error("connection is not TLS")
	}
	nc.Close()

	if _, err := natsrv.Connect(ctx, natsrv.ConnectOptions{URL: e.ClientURL(), Timeout: time.Second}); err == nil {
		t.Error("Connect without the CA succeeded")
	} else {
		t.Logf("without the CA: %v", err)
	}

	nc, err = natsrv.Connect(ctx, natsrv.ConnectOptions{URL: e.ClientURL(), TLSInsecure: true})
	if err != nil {
		t.Fatalf("Connect with TLSInsecure: %v", err)
	}
	nc.Close()
}

// newTestPKI writes a self-signed CA to dir/ca.pem and returns its path and
// a server certificate it signed for 127.0.0.1 and localhost.
func newTestPKI(t *testing.T, dir string) (string, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "natsrv test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return caFile, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// lockedBuffer is written by the server's goroutines and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestEmbeddedLogsWithoutSecrets(t *testing.T) {
	const password, wrong = "log-password-5678", "log-wrong-password-9012"
	var buf lockedBuffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := startEmbedded(t, natsrv.EmbeddedOptions{
		Users:  []*server.User{{Username: "alice", Password: password}},
		Logger: logger,
	})
	ctx := testContext(t)
	for _, pw := range []string{password, wrong} {
		if nc, err := natsrv.Connect(ctx, natsrv.ConnectOptions{URL: e.ClientURL(), User: "alice", Password: pw}); err == nil {
			nc.Close()
		}
	}
	e.Shutdown()
	log := buf.String()
	if !strings.Contains(log, "component=nats-server") || !strings.Contains(log, "level=ERROR") {
		t.Errorf("server log not routed through the slog.Logger:\n%s", log)
	}
	for _, secret := range []string{password, wrong} {
		if strings.Contains(log, secret) {
			t.Errorf("server log contains a password:\n%s", log)
		}
	}
}
