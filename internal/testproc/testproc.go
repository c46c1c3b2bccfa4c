// Package testproc runs a server process a test owns on loopback (MariaDB,
// an S3 gateway): its output in a log file whose tail explains a failed
// start, a readiness wait that gives up at once when the process dies,
// stop by signal, and a retry when the free port was taken before the
// process bound it.
package testproc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/signet-dev/signet/server/servertest"
)

// A Process is one server a test starts, stops and starts again.
type Process struct {
	Name string // the program's name, for messages
	Log  string // its output, appended across starts

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has exited
	waitErr error
}

// Run starts cmd with its output appended to p.Log, then calls ready until
// it answers nil (the process serves), the process exits, or timeout
// passes (the process is then killed). what says what ready waits for, as
// in "accept a login on 127.0.0.1:3306".
func (p *Process) Run(cmd *exec.Cmd, timeout time.Duration, what string, ready func(context.Context) error) error {
	log, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	// A test binary that dies must not leave the server running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", cmd.Path, err)
	}
	exited := make(chan struct{})
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(exited)
	}()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()

	deadline := time.Now().Add(timeout)
	for {
		// If the process dies meanwhile, or never owned the port, stop
		// waiting at once.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		go func() {
			select {
			case <-exited:
				cancel()
			case <-ctx.Done():
			}
		}()
		err = ready(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			p.mu.Lock()
			werr := p.waitErr
			if p.cmd == cmd {
				p.cmd = nil
			}
			p.mu.Unlock()
			return fmt.Errorf("%s exited before it could %s (%v)", p.Name, what, werr)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Stop(syscall.SIGKILL)
			return fmt.Errorf("%s did not %s within %v: %v", p.Name, what, timeout, err)
		}
	}
}

// Stop sends sig and waits until the process has exited (SIGKILL after
// 10 s). Stopping a stopped process does nothing.
func (p *Process) Stop(sig syscall.Signal) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// LostPortRace says whether the last start failed because another process
// took the port first.
func (p *Process) LostPortRace() bool {
	b, _ := os.ReadFile(p.Log)
	return strings.Contains(strings.ToLower(string(b)), "address already in use")
}

// LogTail is the end of the process's log, for a failure's message.
func (p *Process) LogTail() string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "(" + p.Name + " wrote no log " + p.Log + ")"
		}
		return fmt.Sprintf("(no %s log: %v)", p.Name, err)
	}
	const n = 4 << 10
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return p.Name + " log " + p.Log + ", last lines:\n" + string(b)
}

// OnFreePort calls start with a free loopback port until it succeeds and
// returns the port: the kernel's free port can be taken before the process
// binds it, so a start that lost that race tries another, three times in
// all. Any other failure fails the test with the log's tail.
func OnFreePort(t testing.TB, p *Process, what string, start func(port int) error) int {
	t.Helper()
	for attempt := 1; ; attempt++ {
		port := servertest.FreePort(t)
		err := start(port)
		if err == nil {
			return port
		}
		if attempt == 3 || !p.LostPortRace() {
			t.Fatalf("starting %s: %v\n%s", what, err, p.LogTail())
		}
	}
}

// FatalMessage runs f with a testing.TB whose Fatal and Fatalf record the
// message and stop f, and returns that message ("" when f did not fail):
// a test checks what a helper says when it fails.
func FatalMessage(t testing.TB, f func(testing.TB)) string {
	r := &fatalRecorder{TB: t}
	func() {
		defer func() {
			if v := recover(); v != nil && v != errFatal {
				panic(v)
			}
		}()
		f(r)
	}()
	return r.msg
}

var errFatal = errors.New("fatal")

type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(errFatal)
}

func (f *fatalRecorder) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	panic(errFatal)
}
