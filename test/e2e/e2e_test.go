// Package e2e drives the built binaries: a worker on its embedded NATS
// server and mlsadmin, as a user would run them.
package e2e

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// build compiles the module's commands into a temporary directory.
func build(t *testing.T, cmds ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	out := map[string]string{}
	for _, c := range cmds {
		bin := filepath.Join(dir, c)
		b := exec.Command("go", "build", "-o", bin, "github.com/mlsengine/mlsengine/cmd/"+c)
		if o, err := b.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", c, err, o)
		}
		out[c] = bin
	}
	return out
}

var (
	urlRE     = regexp.MustCompile(`url=(nats://[0-9.:]+)`)
	metricsRE = regexp.MustCompile(`msg="metrics and health endpoints" addr=([0-9.:]+)`)
)

// startWorker starts mlsworker on its embedded server (any free port) and
// returns its NATS URL and metrics address once it runs.
func startWorker(t *testing.T, bin, data string, extra ...string) (*exec.Cmd, string, string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--data", data, "--port=-1", "--pinned-ttl", "2s", "--metrics", "127.0.0.1:0"}, extra...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	var url, metrics string
	var log []string
	deadline := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the worker exited:\n%s", strings.Join(log, "\n"))
			}
			log = append(log, l)
			if m := urlRE.FindStringSubmatch(l); m != nil {
				url = m[1]
			}
			if m := metricsRE.FindStringSubmatch(l); m != nil {
				metrics = m[1]
			}
			if strings.Contains(l, "worker running") {
				return cmd, url, metrics
			}
		case <-deadline:
			t.Fatalf("the worker did not start:\n%s", strings.Join(log, "\n"))
		}
	}
}

// TestDemo is the README's main job: a worker on its embedded server and
// mlsadmin demo driving hosted members and an outside client through it.
func TestDemo(t *testing.T) {
	bins := build(t, "mlsworker", "mlsadmin")
	data := t.TempDir()
	_, url, metrics := startWorker(t, bins["mlsworker"], data)
	if url == "" {
		t.Fatal("the worker did not say where its server listens")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bins["mlsadmin"], "demo", "--nats", url, "--data", data).CombinedOutput()
	if err != nil {
		t.Fatalf("mlsadmin demo: %v\n%s", err, out)
	}
	// It ends with what inspect shows of the group, read with the root key
	// the worker generated in its data directory.
	for _, want := range []string{"read \"hello from carol\"", "carol's view: removed", "members (2)", "last applied seq", "demo done"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	// The worker is ready and counts what it did.
	get := func(path string) string {
		t.Helper()
		resp, err := http.Get("http://" + metrics + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s %s", path, resp.Status, b)
		}
		return string(b)
	}
	get("/healthz")
	get("/readyz")
	if m := get("/metrics"); !strings.Contains(m, `mls_worker_inputs_total{kind="command"}`) {
		t.Errorf("/metrics lacks the inputs counter:\n%s", m)
	}
	// The demo runs again against the same worker and data.
	if out, err := exec.CommandContext(ctx, bins["mlsadmin"], "demo", "--nats", url).CombinedOutput(); err != nil {
		t.Fatalf("second demo: %v\n%s", err, out)
	}
	_ = os.Getenv
}
