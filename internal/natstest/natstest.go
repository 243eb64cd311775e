// Package natstest runs real nats-server processes, built from the version
// this module requires, for tests that need what an embedded server cannot
// give: SIGKILL, restarts of a separate process, loopback clusters.
package natstest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	serverModule = "github.com/nats-io/nats-server/v2"
	// readyTimeout covers JetStream recovery and, in a cluster, the
	// election of a meta leader.
	readyTimeout = 20 * time.Second
	// stopTimeout is how long Stop waits for a graceful exit before it
	// kills the process.
	stopTimeout = 15 * time.Second
	// startAttempts: a free port found by listening on :0 can be taken by
	// someone else before the server binds it; retry with another.
	startAttempts = 3
)

// BuildServer returns the path of a nats-server binary of the version the
// module requires, building it on first use. The binary is cached in
// os.TempDir() under a name keyed by that version, so that test processes
// (one per package) share one build; the build writes a temporary file and
// renames it into place, so concurrent builders never expose a partial
// binary. A failed build fails the test: CI must not pass by skipping.
func BuildServer(t testing.TB) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("natstest: the go command is needed to build nats-server: %v", err)
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	out, err := goCommand(root, goBin, "list", "-m", "-f", "{{.Version}}|{{with .Replace}}{{.Path}}{{end}}", serverModule)
	if err != nil {
		t.Fatalf("natstest: finding the nats-server version: %v", err)
	}
	version, replaced, _ := strings.Cut(strings.TrimSpace(out), "|")
	exe := ""
	if runtime.GOOS == "windows" {
		exe = ".exe"
	}

	if replaced != "" || version == "" {
		// A replacement (often a local checkout) can change without its
		// version changing; build it fresh, the build cache keeps that
		// cheap.
		bin := filepath.Join(t.TempDir(), "nats-server"+exe)
		if out, err := goCommand(root, goBin, "build", "-o", bin, serverModule); err != nil {
			t.Fatalf("natstest: building nats-server: %v\n%s", err, out)
		}
		return bin
	}

	bin := filepath.Join(os.TempDir(), "mlsengine-nats-server-"+sanitize(version)+exe)
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o100 != 0 {
		return bin
	}
	tmp, err := os.CreateTemp(os.TempDir(), "mlsengine-nats-server-*.tmp"+exe)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if out, err := goCommand(root, goBin, "build", "-o", tmp.Name(), serverModule); err != nil {
		t.Fatalf("natstest: building nats-server %s: %v\n%s", version, err, out)
	}
	if err := os.Rename(tmp.Name(), bin); err != nil {
		// On Windows a concurrent builder may hold the name; its binary is
		// as good as ours.
		if _, statErr := os.Stat(bin); statErr != nil {
			t.Fatalf("natstest: %v", err)
		}
	}
	return bin
}

func goCommand(dir, goBin string, args ...string) (string, error) {
	cmd := exec.Command(goBin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// moduleRoot walks up from the working directory (the package directory
// under go test) to the directory holding go.mod, so that go build resolves
// nats-server through this module's requirements.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
}

// Process is a nats-server process with JetStream, listening on 127.0.0.1.
// Its log goes to a file whose tail is reported when the test fails.
type Process struct {
	bin      string
	storeDir string
	port     int
	args     []string // the flags after the common ones, kept for Restart
	logPath  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// StartProcess starts nats-server -js -sd storeDir -a 127.0.0.1 -p <free
// port> extraArgs..., waits until it serves JetStream requests (up to 20 s)
// and stops it when the test ends. extraArgs must not repeat -js, -sd, -a
// or -p.
func StartProcess(t testing.TB, bin, storeDir string, extraArgs ...string) *Process {
	t.Helper()
	logDir := t.TempDir()
	var p *Process
	for attempt := 1; ; attempt++ {
		p = newProcess(bin, storeDir, freePort(t), logDir, extraArgs)
		p.start(t)
		err := p.waitReady()
		if err == nil {
			break
		}
		p.Kill()
		if attempt == startAttempts || !p.lostPort() {
			t.Fatalf("natstest: %v\n%s", err, p.logTail())
		}
	}
	p.cleanupOn(t)
	return p
}

func newProcess(bin, storeDir string, port int, logDir string, extra []string) *Process {
	return &Process{
		bin:      bin,
		storeDir: storeDir,
		port:     port,
		args:     append([]string(nil), extra...),
		logPath:  filepath.Join(logDir, "nats-server-"+strconv.Itoa(port)+".log"),
	}
}

func (p *Process) cleanupOn(t testing.TB) {
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("nats-server on port %d, end of log:\n%s", p.port, p.logTail())
		}
	})
}

// start launches the process without waiting for it to be ready.
func (p *Process) start(t testing.TB) {
	t.Helper()
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	// The child gets its own descriptor; ours is not needed after Start.
	defer logFile.Close()
	args := append([]string{"-js", "-sd", p.storeDir, "-a", "127.0.0.1", "-p", strconv.Itoa(p.port)}, p.args...)
	fmt.Fprintf(logFile, "=== natstest: %s %s\n", p.bin, strings.Join(args, " "))
	cmd := exec.Command(p.bin, args...)
	// An *os.File is handed to the child directly, with no copying
	// goroutine that could outlive the test.
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("natstest: starting %s: %v", p.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status of a stopped server says nothing
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
}

// waitReady retries a connection and a JetStream account request until
// both succeed, the process exits or readyTimeout passes.
func (p *Process) waitReady() error {
	_, done := p.current()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	var lastErr error
	for {
		select {
		case <-done:
			return fmt.Errorf("nats-server on port %d exited during startup", p.port)
		case <-ctx.Done():
			return fmt.Errorf("nats-server on port %d not ready after %s: %v", p.port, readyTimeout, lastErr)
		default:
		}
		if lastErr = p.ping(ctx); lastErr == nil {
			return nil
		}
		select {
		case <-done:
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *Process) ping(ctx context.Context) error {
	nc, err := nats.Connect(p.URL(), nats.Timeout(time.Second), nats.NoReconnect())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

func (p *Process) lostPort() bool {
	return strings.Contains(p.logTail(), "address already in use")
}

func (p *Process) current() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.done
}

// URL is the client URL, nats://127.0.0.1:<port>. It does not change
// across restarts.
func (p *Process) URL() string {
	return "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port))
}

// StoreDir is the directory given to -sd.
func (p *Process) StoreDir() string { return p.storeDir }

// Stop sends SIGTERM and waits for the server to shut down, killing it if
// it has not exited after 15 s. Stopping a stopped process does nothing.
func (p *Process) Stop() {
	cmd, done := p.current()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		// No SIGTERM on this platform, or the process is already gone.
		_ = cmd.Process.Kill()
	}
	select {
	case <-done:
	case <-time.After(stopTimeout):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Kill sends SIGKILL and waits for the process to exit: a crash, with no
// chance to flush or close the store.
func (p *Process) Kill() {
	cmd, done := p.current()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill() // fails only if it has exited already
	<-done
}

// Restart stops the process if it is running and starts it again on the
// same store directory, port and flags, waiting until it is ready.
func (p *Process) Restart(t testing.TB) {
	t.Helper()
	p.Stop()
	p.start(t)
	if err := p.waitReady(); err != nil {
		p.Kill()
		t.Fatalf("natstest: restart: %v\n%s", err, p.logTail())
	}
}

// logTail returns the end of the process's log for failure reports.
func (p *Process) logTail() string {
	const tail = 8 << 10
	f, err := os.Open(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > tail {
		if _, err := f.Seek(-tail, io.SeekEnd); err != nil {
			return fmt.Sprintf("(log: %v)", err)
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(log: %v)", err)
	}
	return string(b)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartCluster starts an n-node JetStream cluster on loopback, each node
// with its own store directory and client and route ports that stay fixed
// across restarts, and waits until every node serves JetStream requests
// (which needs an elected meta leader). It is meant for long-running make
// targets; the default test run uses single processes.
func StartCluster(t testing.TB, bin string, n int) []*Process {
	t.Helper()
	if n < 1 {
		t.Fatalf("natstest: cluster of %d nodes", n)
	}
	logDir := t.TempDir()
	routePorts := make([]int, n)
	routes := make([]string, n)
	for i := range n {
		routePorts[i] = freePort(t)
		routes[i] = "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(routePorts[i]))
	}
	nodes := make([]*Process, n)
	for i := range n {
		args := []string{
			"--server_name", fmt.Sprintf("node-%d", i+1),
			"--cluster_name", "mlsengine-test",
			"--cluster", routes[i],
			"--routes", strings.Join(routes, ","),
		}
		nodes[i] = newProcess(bin, t.TempDir(), freePort(t), logDir, args)
		nodes[i].start(t)
		nodes[i].cleanupOn(t)
	}
	// A node's JetStream is ready only once a quorum has met, so wait
	// after all have started.
	for _, p := range nodes {
		if err := p.waitReady(); err != nil {
			t.Fatalf("natstest: cluster: %v\n%s", err, p.logTail())
		}
	}
	return nodes
}
