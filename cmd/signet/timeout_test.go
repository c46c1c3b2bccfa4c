package main

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// A server that accepts connections and never answers: the command gives
// up at --timeout and says so, instead of hanging.
func TestTimeoutOnSilentServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	dir := t.TempDir()
	art := dir + "/a.txt"
	writeFileT(t, art, "x")
	start := time.Now()
	r := runSignet(t, nil, "sign-blob", art, "--server", "http://"+l.Addr().String(), "--identity-token", "x.y.z", "-t", "1s")
	took := time.Since(start)
	if r.code != 1 || !strings.Contains(r.stderr, "--timeout 1s") {
		t.Fatalf("exit %d after %s, stderr:\n%s", r.code, took, r.stderr)
	}
	if took > 30*time.Second {
		t.Errorf("took %s to give up on a 1s --timeout", took)
	}
	runSignet(t, nil, "sign-blob", art, "--server", "http://"+l.Addr().String(), "-t", "0s").want(t, 2)
}

func writeFileT(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
