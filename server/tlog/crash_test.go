package tlog

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
)

// The helper process appends entries and prints one line per acknowledged
// entry until it is killed.
const crashHelperEnv = "SIGNET_TLOG_CRASH_HELPER"

// crashHelper is run by TestMain in the subprocess instead of the tests.
func crashHelper(spec string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "crash helper:", err)
		os.Exit(1)
	}
	dir, seedHex, _ := strings.Cut(spec, ",")
	seed, err := hex.DecodeString(seedHex)
	if err != nil {
		fail(err)
	}
	l, err := Open(context.Background(), Options{Dir: dir, Signer: ed25519.NewKeyFromSeed(seed), Origin: testOrigin})
	if err != nil {
		fail(err)
	}
	t := exitFailer{}
	s := newECDSASigner(t)
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				tle, err := l.AppendHashedRekord(context.Background(), s.request(t, []byte(fmt.Sprintf("%d/%d", w, i))))
				if err != nil {
					fail(err)
				}
				mu.Lock()
				fmt.Fprintf(out, "acked %d %x\n", tle.GetLogIndex(), tle.GetCanonicalizedBody())
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func TestAcknowledgedEntriesSurviveKill9(t *testing.T) {
	dir := t.TempDir()
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), crashHelperEnv+"="+dir+","+hex.EncodeToString(seed))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[uint64][]byte{}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	deadline := time.Now().Add(10 * time.Second)
	for len(acked) < 200 && sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "acked" {
			continue
		}
		idx, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		body, err := hex.DecodeString(f[2])
		if err != nil {
			t.Fatal(err)
		}
		acked[idx] = body
		if time.Now().After(deadline) {
			break
		}
	}
	// SIGKILL: no shutdown, no final checkpoint, appends in flight.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(acked) < 200 {
		t.Fatalf("helper acknowledged only %d entries", len(acked))
	}

	tl := openTestLog(t, dir, ed25519.NewKeyFromSeed(seed), nil)
	size, err := tl.reader.IntegratedSize(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	root, err := tl.tiles.root(context.Background(), size)
	if err != nil {
		t.Fatal(err)
	}
	th := &treeHead{size: size, root: root}
	for idx, body := range acked {
		if idx >= size {
			t.Fatalf("acknowledged entry %d lost: tree size after restart is %d", idx, size)
		}
		leaf := rfc6962.DefaultHasher.HashLeaf(body)
		if _, err := tl.tiles.inclusionProof(context.Background(), th, idx, leaf); err != nil {
			t.Fatalf("acknowledged entry %d not in the recovered tree: %v", idx, err)
		}
	}
	// The restarted log keeps appending onto the recovered tree.
	tle, err := tl.AppendHashedRekord(context.Background(), newECDSASigner(t).request(t, []byte("after crash")))
	if err != nil {
		t.Fatal(err)
	}
	if uint64(tle.GetLogIndex()) != size {
		t.Fatalf("first entry after crash at %d, want %d", tle.GetLogIndex(), size)
	}
}

// exitFailer ends the helper process on a failed helper call.
type exitFailer struct{}

func (exitFailer) Helper()                      {}
func (exitFailer) Fatal(args ...any)            { fmt.Fprintln(os.Stderr, args...); os.Exit(1) }
func (exitFailer) Fatalf(f string, args ...any) { fmt.Fprintf(os.Stderr, f+"\n", args...); os.Exit(1) }
