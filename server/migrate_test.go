package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/client"

	"github.com/signet-dev/signet/server/servertest"
)

// migrateJSON is `signet server migrate -o json`.
type migrateJSON struct {
	Log          migratedLogJSON  `json:"log"`
	CTLog        *migratedLogJSON `json:"ctLog"`
	CTIssuers    int              `json:"ctIssuers"`
	Attestations *struct {
		Total   int      `json:"total"`
		Copied  int      `json:"copied"`
		Present int      `json:"alreadyPresent"`
		Pending []string `json:"pending"`
	} `json:"attestations"`
}

type migratedLogJSON struct {
	TreeSize    uint64 `json:"treeSize"`
	Root        string `json:"root"`
	SignedSize  uint64 `json:"signedSize"`
	AlreadyDone bool   `json:"alreadyDone"`
}

// An embedded server's data directory, migrated into distributed storage,
// is the same log served by two replicas: the same root at the same size,
// every old bundle verifies (signet and sigstore-go) against the new
// deployment's trusted root, the old attestation is found, and new
// entries extend the old tree. A second run changes nothing.
func TestMigrateToDistributed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB, versitygw and three servers")
	}
	db, objects := distributedBackends(t)
	bin := servertest.Binary(t)
	// signet runs the CLI: stdout, and stderr for the failure message.
	signet := func(args ...string) (string, string, error) {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	mustSignet := func(args ...string) string {
		t.Helper()
		out, errOut, err := signet(args...)
		if err != nil {
			t.Fatalf("signet %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		return out
	}
	dir := t.TempDir()
	iss := newTestIssuer(t, dir)
	identity := iss.config("url: https://ci.example.com", "type: email")
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tok := func() string { return iss.mint(t, emailClaims("https://ci.example.com", "alice@example.com")) }

	// The embedded server logs a signature and an attestation.
	data := filepath.Join(dir, "data")
	embAddr := servertest.FreeAddr(t)
	emb := write("embedded.yaml", fmt.Sprintf("url: http://%s\n%s", embAddr, identity))
	p, err := servertest.StartArgsErr(bin, "--config", emb, "--addr", embAddr, "--data", data)
	if err != nil {
		t.Fatal(err)
	}
	artifact := write("release.txt", "release\n")
	oldBundle := filepath.Join(dir, "release.txt.sigstore.json")
	mustSignet("sign-blob", artifact, "--server", p.URL, "--identity-token", tok(), "--bundle", oldBundle)
	subject := strings.Repeat("ab", 32)
	att, err := attestAs(p.URL, tok(), subject)
	if err != nil {
		t.Fatal(err)
	}
	embFetcher, err := client.NewHTTPFetcher(mustURL(t, p.URL+"/api/v2/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	trJSON, err := p.Get("/trust/trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}
	pub, origin := logKeyAndOrigin(t, trJSON, p)
	verifier := noteVerifier(t, origin, pub)
	var old *struct {
		size uint64
		root []byte
	}
	for deadline := time.Now().Add(10 * time.Second); old == nil; time.Sleep(50 * time.Millisecond) {
		cp, _, _, err := client.FetchCheckpoint(context.Background(), embFetcher.ReadCheckpoint, verifier, origin)
		if err == nil && cp.Size > uint64(att.Entries[0].LogIndex) {
			old = &struct {
				size uint64
				root []byte
			}{cp.Size, cp.Hash}
		} else if time.Now().After(deadline) {
			t.Fatalf("no checkpoint covering the attestation's entry: %v", err)
		}
	}
	if err := p.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}

	lb := newBalancer(t)
	dist := write("distributed.yaml", distributedConfig(lb.srv.URL, identity, db, objects, "signet", "prod/"))
	var rep migrateJSON
	if err := json.Unmarshal([]byte(mustSignet("server", "migrate", "--data", data, "--config", dist, "-o", "json")), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Log.TreeSize != old.size || rep.Log.Root != base64.StdEncoding.EncodeToString(old.root) || rep.Log.AlreadyDone {
		t.Fatalf("migrated %+v; the embedded log's last checkpoint was %d entries, root %x", rep.Log, old.size, old.root)
	}
	// Two certificates (the signature's and the attestation's), with the
	// CA's issuer beside them.
	if rep.CTLog == nil || rep.CTLog.TreeSize != 2 || rep.CTLog.AlreadyDone || rep.CTIssuers < 1 {
		t.Fatalf("migrated CT log %+v with %d issuers; want the 2 precertificates and the CA's issuer", rep.CTLog, rep.CTIssuers)
	}
	if a := rep.Attestations; a == nil || a.Total != 1 || a.Copied != 1 || a.Present != 0 || len(a.Pending) != 0 {
		t.Fatalf("migrated attestations %+v; want the 1 stored", rep.Attestations)
	}
	var again migrateJSON
	if err := json.Unmarshal([]byte(mustSignet("server", "migrate", "--data", data, "--config", dist, "-o", "json")), &again); err != nil {
		t.Fatal(err)
	}
	if !again.Log.AlreadyDone || again.Log.TreeSize != rep.Log.TreeSize || again.Log.Root != rep.Log.Root {
		t.Fatalf("a second migration reports %+v, want the same tree already done", again.Log)
	}
	if again.CTLog == nil || !again.CTLog.AlreadyDone || again.CTLog.Root != rep.CTLog.Root {
		t.Fatalf("a second migration reports the CT log %+v, want the same tree already done", again.CTLog)
	}
	if a := again.Attestations; a == nil || a.Copied != 0 || a.Present != 1 {
		t.Fatalf("a second migration reports attestations %+v, want the 1 already present", again.Attestations)
	}

	// Two replicas with the embedded server's keys serve the migrated log.
	var (
		replicas []*servertest.Process
		addrs    []string
	)
	for range 2 {
		addr, rdata := servertest.FreeAddr(t), t.TempDir()
		copyDir(t, filepath.Join(data, "keys"), filepath.Join(rdata, "keys"))
		lb.add(addr) // the server's health is probed at its url, the balancer
		r, err := servertest.StartArgsErr(bin, "--config", dist, "--addr", addr, "--data", rdata)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Kill)
		replicas, addrs = append(replicas, r), append(addrs, addr)
	}
	newTR, err := replicas[0].Get("/trust/trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}
	newRoot := write("trusted_root.json", string(newTR))
	mustSignet("verify-blob", artifact, "--bundle", oldBundle, "--trusted-root", newRoot, "--certificate-identity", "alice@example.com", "--certificate-oidc-issuer", "https://ci.example.com")
	tr, err := root.NewTrustedRootFromJSON(newTR)
	if err != nil {
		t.Fatal(err)
	}
	// The old certificate's SCT is from the migrated CT log, whose key the
	// new trust files list.
	sv, err := verify.NewVerifier(tr, verify.WithSignedCertificateTimestamps(1), verify.WithSignedTimestamps(1), verify.WithTransparencyLog(1))
	if err != nil {
		t.Fatal(err)
	}
	id, err := verify.NewShortCertificateIdentity("https://ci.example.com", "", "alice@example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(oldBundle)
	if err != nil {
		t.Fatal(err)
	}
	var sb bundle.Bundle
	if err := sb.UnmarshalJSON(raw); err != nil {
		t.Fatal(err)
	}
	if _, err := sv.Verify(&sb, verify.NewPolicy(verify.WithArtifact(bytes.NewReader([]byte("release\n"))), verify.WithCertificateIdentity(id))); err != nil {
		t.Fatalf("sigstore-go does not verify the old bundle against the distributed deployment's trusted root: %v", err)
	}

	// New entries extend the old tree.
	att2, err := attestAs(lb.srv.URL, tok(), strings.Repeat("cd", 32))
	if err != nil {
		t.Fatal(err)
	}
	// (The TSA's tokens are logged too, so the attestation's entry need not
	// be the first after the migrated tree.)
	if got := att2.Entries[0].LogIndex; uint64(got) < old.size {
		t.Fatalf("an entry after the migration got index %d, inside the migrated tree of %d", got, old.size)
	}
	fetcher, err := client.NewHTTPFetcher(mustURL(t, lb.srv.URL+"/api/v2/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cp, _, _, err := client.FetchCheckpoint(context.Background(), fetcher.ReadCheckpoint, verifier, origin)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := client.NewProofBuilder(context.Background(), cp.Size, fetcher.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := pb.ConsistencyProof(context.Background(), old.size, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old.size, cp.Size, cons, old.root, cp.Hash); err != nil {
		t.Fatalf("the distributed log (%d entries) does not extend the embedded one (%d): %v", cp.Size, old.size, err)
	}
	// The CT log goes on from the migrated tree.
	if ids := sctLogIDs(t, att2.Certificate); len(ids) != 1 {
		t.Fatalf("a certificate after the migration carries %d SCTs", len(ids))
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + addrs[0] + "/ctlog/checkpoint")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		lines := strings.SplitN(string(body), "\n", 4)
		if resp.StatusCode == http.StatusOK && len(lines) == 4 && lines[1] == "3" {
			ctFetcher, err := client.NewHTTPFetcher(mustURL(t, "http://"+addrs[0]+"/ctlog/"), nil)
			if err != nil {
				t.Fatal(err)
			}
			pb, err := client.NewProofBuilder(context.Background(), 3, ctFetcher.ReadTile)
			if err != nil {
				t.Fatal(err)
			}
			cons, err := pb.ConsistencyProof(context.Background(), 2, 3)
			if err != nil {
				t.Fatal(err)
			}
			oldRoot, _ := base64.StdEncoding.DecodeString(rep.CTLog.Root)
			newRoot, _ := base64.StdEncoding.DecodeString(lines[2])
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, 2, 3, cons, oldRoot, newRoot); err != nil {
				t.Fatalf("the distributed CT log does not extend the migrated one: %v", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no CT checkpoint of 3 entries (2 migrated, 1 new): %d %.300s", resp.StatusCode, body)
		}
	}

	// The attestation stored before the migration is found through every replica.
	for _, addr := range addrs {
		resp, err := http.Get("http://" + addr + "/api/v2/attestations?digest=sha256:" + subject)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), att.AttestationID) {
			t.Fatalf("a replica does not find the migrated attestation %s: %d %.300s", att.AttestationID, resp.StatusCode, body)
		}
	}
}

// signet server migrate refuses, before it touches any storage, what
// cannot work: the distributed settings point at a port nothing listens on,
// so a refusal that got as far as the database would say so instead.
func TestMigrateRefusals(t *testing.T) {
	bin := servertest.Binary(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	p := servertest.Start(t, data, "--dev-oidc")
	certify(t, p) // a precertificate in the CT log
	iss := newTestIssuer(t, dir)
	identity := iss.config("url: https://ci.example.com", "type: email")
	write := func(name, content string) string {
		t.Helper()
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	const dsn, ctDSN = "signet:pw@tcp(127.0.0.1:1)/signet", "signet:pw@tcp(127.0.0.1:1)/signet_ct"
	storageYAML := "storage:\n  driver: distributed\n  database:\n    dsn: \"" + dsn + "\"\n  objects:\n    bucket: signet\n"
	withCT := storageYAML + "  ctDatabase:\n    dsn: \"" + ctDSN + "\"\n"
	// The origin the embedded server's log has: its URL's host.
	good := write("good.yaml", "url: http://127.0.0.1:9\n"+identity+withCT)
	t.Setenv("AWS_REGION", "test")
	run := func(args ...string) (int, string) {
		cmd := exec.Command(bin, append([]string{"server", "migrate"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			return 0, string(out)
		}
		return cmd.ProcessState.ExitCode(), string(out)
	}
	for _, c := range []struct {
		name   string
		args   []string
		status int
		says   []string
	}{
		{"server running", []string{"--data", data, "--config", good}, 1, []string{"is in use by another signet server"}},
		{"no config", []string{"--data", data}, 2, []string{"--config is required", "storage.driver: distributed"}},
		{"embedded config", []string{"--data", data, "--config", write("embedded.yaml", identity)}, 1, []string{"storage.driver is embedded", "storage.driver: distributed"}},
		{"no data directory", []string{"--data", filepath.Join(dir, "nothing"), "--config", good}, 1, []string{"there is no data directory at", "--data"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, out := run(c.args...)
			if status != c.status {
				t.Fatalf("exit status %d, want %d:\n%s", status, c.status, out)
			}
			for _, s := range c.says {
				if !strings.Contains(out, s) {
					t.Errorf("the refusal does not say %q:\n%s", s, out)
				}
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "nothing")); err == nil {
		t.Error("a refused migration created the data directory it was given")
	}
	if err := p.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, yaml string
		says       []string
	}{
		{"another origin", "url: http://127.0.0.1:9\nlog:\n  origin: log.example.com\n" + identity + withCT, []string{"has the origin 127.0.0.1, but the distributed servers would sign under log.example.com", "set log.origin: 127.0.0.1"}},
		{"CT log dropped", "url: http://127.0.0.1:9\nct:\n  disabled: true\n" + identity + storageYAML, []string{"holds a CT log, and this configuration has ct.disabled: true", "storage.ctDatabase"}},
		{"CT log on the log's database", "url: http://127.0.0.1:9\n" + identity + storageYAML + "  ctDatabase:\n    dsnFile: " + write("ct-dsn", dsn) + "\n", []string{"storage.ctDatabase names the same database (signet on 127.0.0.1:1) as storage.database"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, out := run("--data", data, "--config", write(strings.ReplaceAll(c.name, " ", "-")+".yaml", c.yaml))
			if status != 1 {
				t.Fatalf("exit status %d, want 1:\n%s", status, out)
			}
			for _, s := range c.says {
				if !strings.Contains(out, s) {
					t.Errorf("the refusal does not say %q:\n%s", s, out)
				}
			}
		})
	}
	// With nothing wrong but the database, the run gets as far as it: the
	// cases above were refused before it.
	if status, out := run("--data", data, "--config", good); status != 1 || !strings.Contains(out, "127.0.0.1:1") {
		t.Fatalf("against a database that does not answer: exit %d\n%s", status, out)
	}
}
