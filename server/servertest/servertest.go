// Package servertest runs the real signet binary as a server process for
// integration tests: built once per test binary, started on a loopback port
// chosen by the kernel, and stopped by SIGTERM or killed with SIGKILL.
package servertest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
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
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/signet once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "signet-bin-*")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "signet")
		_, file, _, _ := runtime.Caller(0)
		moduleRoot := filepath.Join(filepath.Dir(file), "..", "..")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/signet")
		cmd.Dir = moduleRoot
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/signet: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Process is a running `signet server`.
type Process struct {
	URL          string
	DataDir      string
	RequestToken string // development issuer's request token, when --dev-oidc

	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{}
	err    error
}

// Start runs `signet server --addr 127.0.0.1:0 --data dataDir args...` and
// waits until it answers /healthz. The process is killed when the test ends.
func Start(t testing.TB, dataDir string, args ...string) *Process {
	t.Helper()
	p, err := StartErr(Binary(t), dataDir, args...)
	if err != nil {
		t.Fatal(err)
	}
	p.cleanup(t)
	return p
}

// cleanup kills the process when the test ends, showing what it logged if
// the test failed.
func (p *Process) cleanup(t testing.TB) {
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("server stderr (last 4 KiB):\n%s", tail(p.Stderr(), 4096))
		}
	})
}

// StartErr is Start without a testing.TB, for callers that expect failure.
func StartErr(bin, dataDir string, args ...string) (*Process, error) {
	p, err := StartArgsErr(bin, append([]string{"--addr", "127.0.0.1:0", "--data", dataDir}, args...)...)
	if err != nil {
		return nil, err
	}
	p.DataDir = dataDir // as given, not as the server resolved it
	return p, nil
}

// StartArgs runs `signet server args...` with no --addr or --data of its
// own (a config file may give them; DataDir is then what the server says it
// uses) and waits until it answers /healthz. The process is killed when the
// test ends.
func StartArgs(t testing.TB, args ...string) *Process {
	t.Helper()
	p, err := StartArgsErr(Binary(t), args...)
	if err != nil {
		t.Fatal(err)
	}
	p.cleanup(t)
	return p
}

// StartArgsErr is StartArgs without a testing.TB, for callers that expect
// failure.
func StartArgsErr(bin string, args ...string) (*Process, error) {
	all := append([]string{"server", "--log-level", "warn"}, args...)
	cmd := exec.Command(bin, all...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()

	// The banner's first lines name the URL and the data directory; the
	// rest is read and dropped.
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	deadline := time.After(60 * time.Second)
	for p.URL == "" || p.DataDir == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				<-p.done
				return nil, fmt.Errorf("signet server exited before listening: %v\n%s", p.err, p.stderr.String())
			}
			if rest, ok := strings.CutPrefix(l, "signet server at "); ok {
				p.URL = strings.TrimSpace(rest)
			}
			if rest, ok := strings.CutPrefix(l, "  data directory "); ok {
				p.DataDir = strings.TrimSpace(rest)
			}
		case <-deadline:
			p.Kill()
			return nil, fmt.Errorf("signet server did not print its URL within 60s\n%s", p.stderr.String())
		}
	}
	// Readiness only: a TLS test checks the certificate itself.
	probe := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for i := 0; ; i++ {
		resp, err := probe.Get(p.URL + "/healthz")
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			err = fmt.Errorf("%s: %s", resp.Status, body)
		}
		if i > 200 {
			p.Kill()
			return nil, fmt.Errorf("signet server at %s never became healthy: %v\n%s", p.URL, err, p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The probe's kept-alive connection would count against the server's
	// http.maxConnections.
	probe.CloseIdleConnections()
	if b, err := os.ReadFile(filepath.Join(p.DataDir, "dev-oidc", "request-token")); err == nil {
		p.RequestToken = strings.TrimSpace(string(b))
	}
	return p, nil
}

// Stderr is what the server logged so far.
func (p *Process) Stderr() string { return p.stderr.String() }

// Kill sends SIGKILL and waits: the crash the log must survive.
func (p *Process) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Signal sends sig without waiting.
func (p *Process) Signal(sig os.Signal) { _ = p.cmd.Process.Signal(sig) }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Stop sends SIGTERM and waits for a graceful exit, returning its error.
func (p *Process) Stop(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("server did not exit within %s of SIGTERM", timeout)
	}
}

// Token mints a development-issuer token with the given identity parameters.
func (p *Process) Token(ctx context.Context, params url.Values) (string, error) {
	u := p.URL + "/dev/oidc/token?" + params.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "bearer "+p.RequestToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token endpoint: HTTP %d: %s", resp.StatusCode, body)
	}
	var out struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return "", err
	}
	return out.Value, nil
}

// Get fetches a path and returns the body, failing on a non-200 answer.
func (p *Process) Get(path string) ([]byte, error) {
	resp, err := http.Get(p.URL + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d: %s", path, resp.StatusCode, body)
	}
	return body, nil
}

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

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// FreeAddr is a loopback address no one listens on (the kernel's choice),
// for a server a test starts later.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// FreePort is FreeAddr's port.
func FreePort(t testing.TB) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(FreeAddr(t))
	n, _ := strconv.Atoi(port)
	return n
}
