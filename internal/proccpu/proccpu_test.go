package proccpu

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// A comm with a space and a parenthesis, as the kernel writes it.
	line := "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 12345 1000 100"
	comm, sec, ok := parseStat(line)
	if !ok || comm != "my (odd) cmd" || sec != 3 {
		t.Fatalf("parseStat = %q, %v, %v; want \"my (odd) cmd\", 3, true", comm, sec, ok)
	}
	for _, bad := range []string{"", "12 no-parens S 1", "12 (short) S 1 2"} {
		if _, _, ok := parseStat(bad); ok {
			t.Errorf("parseStat(%q) accepted a malformed line", bad)
		}
	}
}

func TestSinceCountsThisProcess(t *testing.T) {
	before := ByCommand()
	// Burn about 300 ms of CPU in this process.
	end := time.Now().Add(300 * time.Millisecond)
	x := 0
	for time.Now().Before(end) {
		x++
	}
	_ = x
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	comm := filepath.Base(exe)
	if len(comm) > 15 {
		comm = comm[:15]
	}
	got := Since(before, 0.05)[comm]
	if got < 0.1 || got > 5 {
		t.Fatalf("Since for %s = %.2f s; want about 0.3 s", comm, got)
	}
}
