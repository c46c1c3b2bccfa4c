package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/signet-dev/signet/internal/toolcache"
	"github.com/signet-dev/signet/server/servertest"
)

// witness is a running transparency-dev/witness omniwitness: a real C2SP
// tlog-witness that knows one log.
type witness struct {
	name  string
	url   string
	vkey  string // cosignature/v1 verifier key, as policies name it
	cmd   *exec.Cmd
	out   *bytes.Buffer
	stop  func()
	start func() // again, with the same key, database and address
	alive bool
}

// startWitness runs an omniwitness that witnesses the log with the given
// origin and verifier key (what `signet log checkpoint` prints).
func startWitness(t *testing.T, bin, name, logOrigin, logVKey string) *witness {
	t.Helper()
	dir := t.TempDir()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	cosigVKey, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "witness.key")
	logs := filepath.Join(dir, "logs.yaml")
	if err := os.WriteFile(keyFile, []byte(skey), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(logs, fmt.Appendf(nil, "Logs:\n  - Origin: %q\n    PublicKey: %q\n", logOrigin, logVKey), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	w := &witness{name: name, url: "http://" + addr, vkey: cosigVKey, out: &bytes.Buffer{}}
	w.start = func() {
		t.Helper()
		w.cmd = exec.Command(bin, "--listen", addr, "--metrics_listen", "", "--db_file", filepath.Join(dir, "witness.db"),
			"--private_key_path", keyFile, "--additional_logs", logs)
		w.cmd.Stdout, w.cmd.Stderr = w.out, w.out
		if err := w.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w.alive = true
		for i := 0; ; i++ {
			resp, err := http.Get(w.url + "/")
			if err == nil {
				resp.Body.Close()
				break
			}
			if i > 300 {
				t.Fatalf("witness %s never listened on %s: %v\n%s", name, addr, err, w.out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	w.stop = func() {
		if w.alive {
			_ = w.cmd.Process.Kill()
			_ = w.cmd.Wait()
			w.alive = false
		}
	}
	t.Cleanup(func() {
		w.stop()
		if t.Failed() {
			t.Logf("witness %s output:\n%s", name, w.out.String())
		}
	})
	w.start()
	return w
}

func (w *witness) policyLine() string {
	return fmt.Sprintf("witness %s %s %s\n", w.name, w.vkey, w.url)
}

// TestWitnessedCheckpoints runs the log with a real witness cosigning its
// checkpoints: bundles carry the cosigned checkpoint, signet's verifier
// holds it to a witness policy (naming each missing or bad cosignature),
// standard verifiers still accept the bundle, and a log whose witnesses
// are gone refuses to acknowledge entries with a clear 503.
func TestWitnessedCheckpoints(t *testing.T) {
	bin, err := toolcache.Witness.Binary()
	if err != nil {
		t.Fatalf("building the witness %s: %v", toolcache.Witness.Version, err)
	}
	cosignBinary(t)

	// A first start makes the log's key; its verifier key is what the
	// witnesses are told.
	data := t.TempDir()
	first := servertest.Start(t, data, "--dev-oidc")
	var cp checkpointJSON
	runSignet(t, nil, "log", "checkpoint", "--server", first.URL, "-o", "json").want(t, 0).decode(t, &cp)
	if cp.VerifierKey == "" || !strings.HasPrefix(cp.VerifierKey, cp.Origin+"+") {
		t.Fatalf("log checkpoint printed no verifier key for origin %s: %q", cp.Origin, cp.VerifierKey)
	}
	if err := first.Stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}

	a := startWitness(t, bin, "witness-a.example", cp.Origin, cp.VerifierKey)
	b := startWitness(t, bin, "witness-b.example", cp.Origin, cp.VerifierKey)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The log asks witness a only; clients hold it to policies of their own.
	serverPolicy := write("log-policy.txt", "# the log's witnesses\n"+a.policyLine()+"quorum witness-a.example\n")
	cfg := write("signet.yaml", fmt.Sprintf("log:\n  witnessPolicy: %s\n  witnessTimeout: 1s\n", serverPolicy))
	e := newCLIEnvIn(t, data, "acme/app", "--config", cfg)

	art := e.file(t, "app.tar.gz", "release 1.2.3\n")
	bundlePath := filepath.Join(e.dir, "app.sigstore.json")
	runSignet(t, e.serverEnv, "sign-blob", art, "--bundle", bundlePath, "--identity-token", e.token).want(t, 0)
	envelope := bundleCheckpoint(t, bundlePath)
	if !strings.Contains(envelope, "— witness-a.example ") {
		t.Fatalf("the bundle's checkpoint carries no cosignature of witness-a:\n%s", envelope)
	}

	onlyA := write("only-a.txt", a.policyLine()+"quorum witness-a.example\n")
	both := write("both.txt", "witness witness-a.example "+a.vkey+"\nwitness witness-b.example "+b.vkey+"\ngroup both all witness-a.example witness-b.example\nquorum both\n")
	twoOfThree := write("two-of-three.txt", a.policyLine()+b.policyLine()+"witness witness-c.example "+mustCosigKey(t, "witness-c.example")+"\ngroup g 2 witness-a.example witness-b.example witness-c.example\nquorum g\n")

	t.Run("a policy the cosignatures meet", func(t *testing.T) {
		var r verifyResult
		runSignet(t, nil, append([]string{"verify-blob", art, "--bundle", bundlePath, "--witness-policy", onlyA, "-o", "json"}, e.policy()...)...).want(t, 0).decode(t, &r)
		if len(r.LogEntries) != 1 || strings.Join(r.LogEntries[0].Witnesses, ",") != "witness-a.example" {
			t.Fatalf("verified entries name witnesses %+v, want witness-a.example", r.LogEntries)
		}
	})
	t.Run("a policy needing two witnesses fails with one", func(t *testing.T) {
		for _, pol := range []string{both, twoOfThree} {
			var r verifyResult
			run := runSignet(t, nil, append([]string{"verify-blob", art, "--bundle", bundlePath, "--witness-policy", pol, "-o", "json"}, e.policy()...)...).want(t, 1)
			run.decode(t, &r)
			if r.FailedCheck != "witness" || !strings.Contains(r.Error, "cosigned by witness-a.example") || !strings.Contains(r.Error, "witness-b.example (no cosignature)") {
				t.Errorf("%s: failed check %q, error %q; want the witness check naming witness-b's missing cosignature", filepath.Base(pol), r.FailedCheck, r.Error)
			}
		}
	})
	sigstoreGo := func(t *testing.T, path string) error {
		content, err := os.ReadFile(art)
		if err != nil {
			t.Fatal(err)
		}
		return e.sigstoreGoVerify(t, path, content)
	}
	t.Run("standard verifiers ignore the cosignature lines", func(t *testing.T) {
		mustCosign(t, append([]string{"verify-blob", "--bundle", bundlePath, art}, e.cosignVerifyFlags()...)...)
		if err := sigstoreGo(t, bundlePath); err != nil {
			t.Fatalf("sigstore-go rejects a bundle with a cosigned checkpoint: %v", err)
		}
	})
	t.Run("a bad cosignature is named", func(t *testing.T) {
		forged := filepath.Join(e.dir, "forged.sigstore.json")
		editBundleProto(t, bundlePath, forged, func(pb *protobundle.Bundle) {
			c := pb.GetVerificationMaterial().GetTlogEntries()[0].GetInclusionProof().GetCheckpoint()
			c.Envelope = flipSignature(t, c.Envelope, "witness-a.example")
		})
		// The log's signature is intact, so without a policy it verifies.
		runSignet(t, nil, append([]string{"verify-blob", art, "--bundle", forged}, e.policy()...)...).want(t, 0)
		var r verifyResult
		runSignet(t, nil, append([]string{"verify-blob", art, "--bundle", forged, "--witness-policy", onlyA, "-o", "json"}, e.policy()...)...).want(t, 1).decode(t, &r)
		if r.FailedCheck != "witness" || !strings.Contains(r.Error, "witness-a.example (cosignature does not verify)") {
			t.Errorf("failed check %q, error %q; want witness-a's cosignature named as not verifying", r.FailedCheck, r.Error)
		}
		// sigstore-go differs: it has no witness policy and reads only the
		// log's signature line, so the forged cosignature passes there.
		if err := sigstoreGo(t, forged); err != nil {
			t.Errorf("sigstore-go now checks cosignatures (update docs/verification.md): %v", err)
		}
	})
	t.Run("the served checkpoint is cosigned", func(t *testing.T) {
		var c checkpointJSON
		runSignet(t, nil, "log", "checkpoint", "--trusted-root", e.root, "--log", e.p.URL, "--witness-policy", onlyA, "-o", "json").want(t, 0).decode(t, &c)
		if strings.Join(c.Witnesses, ",") != "witness-a.example" {
			t.Errorf("log checkpoint names witnesses %v", c.Witnesses)
		}
		run := runSignet(t, nil, "log", "checkpoint", "--trusted-root", e.root, "--log", e.p.URL, "--witness-policy", both).want(t, 1)
		if !strings.Contains(run.stderr, "witness-b.example (no cosignature)") {
			t.Errorf("log checkpoint with an unmet policy said:\n%s", run.stderr)
		}
		runSignet(t, nil, "log", "monitor", "--once", "--trusted-root", e.root, "--log", e.p.URL, "--witness-policy", onlyA).want(t, 0)
		run = runSignet(t, nil, "log", "monitor", "--once", "--trusted-root", e.root, "--log", e.p.URL, "--witness-policy", both).want(t, 1)
		if !strings.Contains(run.stderr, "without the cosignatures the witness policy requires") || !strings.Contains(run.stderr, "witness-b.example (no cosignature)") {
			t.Errorf("log monitor with an unmet policy said:\n%s", run.stderr)
		}
		metrics, err := e.p.Get("/metrics")
		if err != nil {
			t.Fatal(err)
		}
		host := strings.TrimPrefix(a.url, "http://")
		if !strings.Contains(string(metrics), `signet_tlog_witness_requests_total{answer="200",origin="127.0.0.1",witness="`+host+`"}`) {
			t.Errorf("/metrics counts no 200 answer of witness %s", host)
		}
	})
	t.Run("bad policies are usage errors", func(t *testing.T) {
		for name, text := range map[string]string{
			"no-quorum.txt":   a.policyLine(),
			"bad-key.txt":     "witness w notakey\nquorum w\n",
			"unknown-kw.txt":  "witnes w " + a.vkey + "\nquorum w\n",
			"big-k.txt":       a.policyLine() + "group g 2 witness-a.example\nquorum g\n",
			"undefined-q.txt": a.policyLine() + "quorum nobody\n",
		} {
			run := runSignet(t, nil, append([]string{"verify-blob", art, "--bundle", bundlePath, "--witness-policy", write(name, text)}, e.policy()...)...).want(t, 2)
			if !strings.Contains(run.stderr, "--witness-policy") {
				t.Errorf("%s: stderr does not name the flag:\n%s", name, run.stderr)
			}
		}
	})
	t.Run("no witness, no acknowledged entry", func(t *testing.T) {
		a.stop()
		other := e.file(t, "other.tar.gz", "release 1.2.4\n")
		run := runSignet(t, e.serverEnv, "sign-blob", other, "--bundle", filepath.Join(e.dir, "other.sigstore.json"), "--identity-token", e.token)
		if run.code == 0 {
			t.Fatal("signing succeeded with the log's only witness down")
		}
		if !strings.Contains(run.stderr, "witnesses") || !strings.Contains(run.stderr, "503") {
			t.Errorf("the refusal does not say the witnesses are at fault:\n%s", run.stderr)
		}
		if _, err := os.Stat(filepath.Join(e.dir, "other.sigstore.json")); err == nil {
			t.Error("a bundle was written although the log acknowledged nothing")
		}
		// Back with the tree it cosigned before: the log catches it up
		// with a consistency proof and acknowledges entries again.
		a.start()
		third := e.file(t, "third.tar.gz", "release 1.2.5\n")
		tb := filepath.Join(e.dir, "third.sigstore.json")
		runSignet(t, e.serverEnv, "sign-blob", third, "--bundle", tb, "--identity-token", e.token).want(t, 0)
		runSignet(t, nil, append([]string{"verify-blob", third, "--bundle", tb, "--witness-policy", onlyA}, e.policy()...)...).want(t, 0)
	})
}

// mustCosigKey is a cosignature verifier key of a new witness nobody runs.
func mustCosigKey(t *testing.T, name string) string {
	t.Helper()
	_, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	k, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// readBundle parses a bundle file.
func readBundle(t *testing.T, path string) *protobundle.Bundle {
	t.Helper()
	var pb protobundle.Bundle
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := protojson.Unmarshal(raw, &pb); err != nil {
		t.Fatal(err)
	}
	return &pb
}

// editBundleProto writes a copy of the bundle at from, changed by edit, to to.
func editBundleProto(t *testing.T, from, to string, edit func(*protobundle.Bundle)) {
	t.Helper()
	pb := readBundle(t, from)
	edit(pb)
	out, err := protojson.Marshal(pb)
	if err != nil {
		t.Fatal(err)
	}
	var pretty bytes.Buffer
	_ = json.Indent(&pretty, out, "", "  ")
	if err := os.WriteFile(to, pretty.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// bundleCheckpoint is the checkpoint of the bundle's only log entry.
func bundleCheckpoint(t *testing.T, path string) string {
	t.Helper()
	return readBundle(t, path).GetVerificationMaterial().GetTlogEntries()[0].GetInclusionProof().GetCheckpoint().GetEnvelope()
}

// flipSignature changes the last byte of name's signature (after its key
// hash and timestamp), keeping the base64 canonical.
func flipSignature(t *testing.T, envelope, name string) string {
	t.Helper()
	lines := strings.Split(envelope, "\n")
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) == 3 && f[0] == "—" && f[1] == name {
			sig, err := base64.StdEncoding.DecodeString(f[2])
			if err != nil {
				t.Fatal(err)
			}
			sig[len(sig)-1] ^= 1
			lines[i] = "— " + name + " " + base64.StdEncoding.EncodeToString(sig)
			return strings.Join(lines, "\n")
		}
	}
	t.Fatalf("no signature line of %s in\n%s", name, envelope)
	return ""
}
