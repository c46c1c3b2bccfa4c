package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/signet-dev/signet/core/oci"
	"github.com/signet-dev/signet/core/oci/ocitest"
	"github.com/signet-dev/signet/core/pipeline"
)

// storeLimit is the attestation store limit of the test server: small
// attestations fit, the large SBOM below does not.
const storeLimit = 256 << 10

// newImageEnv is newCLIEnv with a server whose attestation store keeps
// envelopes up to storeLimit bytes.
func newImageEnv(t *testing.T) *cliEnv {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "signet.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "attestations:\n  maxEnvelopeBytes: %d\n", storeLimit), 0o644); err != nil {
		t.Fatal(err)
	}
	return newCLIEnv(t, "--config", cfg)
}

// sign runs an image signing command against the env's server.
func (e *cliEnv) sign(t *testing.T, env []string, args ...string) cliRun {
	t.Helper()
	return runSignet(t, append(append([]string{}, e.serverEnv...), env...), append(args, "--identity-token", e.token)...)
}

const slsaPredicate = `{"buildDefinition":{"buildType":"https://actions.github.io/buildtypes/workflow/v1","externalParameters":{"workflow":"release.yml"}},"runDetails":{"builder":{"id":"https://github.com/actions/runner"}}}`
const spdxPredicate = `{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"app","dataLicense":"CC0-1.0","documentNamespace":"https://example.com/app","creationInfo":{"created":"2026-01-01T00:00:00Z","creators":["Tool: test"]},"packages":[]}`
const cdxPredicate = `{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,"components":[]}`

func TestImageSignVerifyAttestFallbackTag(t *testing.T) {
	e := newImageEnv(t)
	reg := ocitest.Start(t)
	tagRef := reg.Ref("acme/app:v1")
	digest := pushImage(t, tagRef)
	digestRef := reg.Ref("acme/app@" + digest)

	// Sign by tag: the tag is resolved and its digest signed.
	r := e.sign(t, nil, "sign", tagRef, "-o", "json").want(t, 0)
	var signed imageSignResult
	r.decode(t, &signed)
	if len(signed.Signed) != 1 {
		t.Fatalf("signed %+v", signed)
	}
	s := signed.Signed[0]
	if s.Digest != digestRef || s.Kind != "signature" || s.PredicateType != oci.CosignSignPredicateType || s.Identity != e.identity || s.Issuer != e.issuer {
		t.Errorf("signed %+v, want %s by %s", s, digestRef, e.identity)
	}
	wantTag := reg.Ref("acme/app:" + strings.Replace(digest, ":", "-", 1))
	if s.Path != string(oci.PathReferrersTag) || s.FallbackTag != wantTag || len(s.LogEntries) != 1 {
		t.Errorf("path %q tag %q entries %v; want the referrers tag %s", s.Path, s.FallbackTag, s.LogEntries, wantTag)
	}
	if !strings.Contains(r.stderr, "info: registry "+reg.Host+" has no OCI referrers API") || strings.Contains(r.stderr, "Error") {
		t.Errorf("stderr should say what the fallback did, as info:\n%s", r.stderr)
	}

	verifyArgs := func(cmd, image string, extra ...string) []string {
		return append(append([]string{cmd, image}, e.policy()...), extra...)
	}
	t.Run("verify by tag and by digest", func(t *testing.T) {
		out := runSignet(t, nil, verifyArgs("verify", tagRef)...).want(t, 0).stdout
		if !strings.Contains(out, "Verified OK: signature of "+digestRef) || !strings.Contains(out, e.identity) {
			t.Errorf("stdout:\n%s", out)
		}
		var v imageVerifyResult
		runSignet(t, nil, verifyArgs("verify", digestRef, "-o", "json", "--certificate-github-workflow-repository", "acme/app")...).want(t, 0).decode(t, &v)
		if !v.Verified || len(v.Subjects) != 1 || len(v.Subjects[0].Attachments) != 1 {
			t.Fatalf("%+v", v)
		}
		a := v.Subjects[0].Attachments[0]
		if !a.Verified || a.Source != string(oci.SourceReferrersTag) || a.Manifest != s.Referrer || a.Identity != e.identity ||
			len(a.LogEntries) != 1 || a.LogEntries[0].LogIndex != s.LogEntries[0].LogIndex || len(a.VerifiedTimes) != 1 {
			t.Errorf("attachment %+v; signed %+v", a, s)
		}
	})

	t.Run("verify rejects", func(t *testing.T) {
		for name, c := range map[string]struct {
			args  []string
			check string
		}{
			"wrong identity": {[]string{"verify", digestRef, "--trusted-root", e.root, "--certificate-identity", "https://github.com/acme/fork/.github/workflows/release.yml@refs/heads/main", "--certificate-oidc-issuer", e.issuer}, "identity"},
			"wrong repo ext": {verifyArgs("verify", digestRef, "--certificate-github-workflow-repository", "acme/fork"), "identity"},
			"unsigned image": {verifyArgs("verify", reg.Ref("acme/app@"+pushImage(t, reg.Ref("acme/app:unsigned")))), string(pipeline.CheckAttachment)},
			"no attestation": {verifyArgs("verify-attestation", digestRef, "--type", "https://example.com/none/v1"), string(pipeline.CheckAttachment)},
		} {
			r := runSignet(t, nil, append(c.args, "-o", "json")...).want(t, 1)
			var v imageVerifyResult
			r.decode(t, &v)
			if v.Verified || v.FailedCheck != c.check || !strings.Contains(r.stderr, "verification failed: "+c.check) {
				t.Errorf("%s: %+v\nstderr: %s", name, v, r.stderr)
			}
		}
		runSignet(t, nil, "verify", digestRef, "--trusted-root", e.root).want(t, 2)
		runSignet(t, nil, verifyArgs("verify", "not a reference!")...).want(t, 2)
	})

	t.Run("attest each predicate type", func(t *testing.T) {
		for _, c := range []struct{ typ, predicate, uri string }{
			{"slsaprovenance1", slsaPredicate, "https://slsa.dev/provenance/v1"},
			{"spdxjson", spdxPredicate, "https://spdx.dev/Document"},
			{"cyclonedx", cdxPredicate, "https://cyclonedx.org/bom"},
			{"https://example.com/test-result/v1", `{"passed":true}`, "https://example.com/test-result/v1"},
		} {
			pred := e.file(t, "pred-"+filepath.Base(c.uri)+".json", c.predicate)
			var res imageSignResult
			e.sign(t, nil, "attest", tagRef, "--predicate", pred, "--type", c.typ, "-o", "json").want(t, 0).decode(t, &res)
			if a := res.Signed[0]; a.Kind != "attestation" || a.PredicateType != c.uri || a.AttestationID == "" || a.Path != string(oci.PathReferrersTag) {
				t.Errorf("%s: %+v; want an attestation kept in the store", c.typ, a)
			}
			var v imageVerifyResult
			runSignet(t, nil, verifyArgs("verify-attestation", tagRef, "--type", c.typ, "-o", "json")...).want(t, 0).decode(t, &v)
			if att := v.Subjects[0].Attachments; len(att) != 1 || !att[0].Verified || att[0].PredicateType != c.uri {
				t.Errorf("%s: verified %+v", c.typ, att)
			}
		}
		// Without --type every attestation is verified and reported.
		var v imageVerifyResult
		runSignet(t, nil, verifyArgs("verify-attestation", digestRef, "-o", "json")...).want(t, 0).decode(t, &v)
		if n := len(v.Subjects[0].Attachments); n != 4 {
			t.Errorf("%d attestations verified, want 4", n)
		}
		// The signature is not an attestation, nor an attestation a signature.
		runSignet(t, nil, verifyArgs("verify", digestRef, "-o", "json")...).want(t, 0).decode(t, &v)
		if n := len(v.Subjects[0].Attachments); n != 1 {
			t.Errorf("verify checked %d attachments, want the 1 signature", n)
		}
	})

	t.Run("attest refusals", func(t *testing.T) {
		spdx := e.file(t, "sbom.spdx.json", spdxPredicate)
		r := e.sign(t, nil, "attest", tagRef, "--predicate", spdx, "--type", "cyclonedx").want(t, 2)
		if !strings.Contains(r.stderr, "pass --type spdxjson") {
			t.Errorf("stderr: %s", r.stderr)
		}
		e.sign(t, nil, "attest", tagRef, "--predicate", e.file(t, "bad.json", `{"not":"provenance"`), "--type", "slsaprovenance1").want(t, 2)
		e.sign(t, nil, "attest", tagRef, "--type", "spdxjson").want(t, 2)

		// An SBOM over the server's store limit: refused by the store,
		// nothing attached.
		var big bytes.Buffer
		big.WriteString(`{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","packages":[`)
		for i := 0; big.Len() < storeLimit; i++ {
			if i > 0 {
				big.WriteByte(',')
			}
			fmt.Fprintf(&big, `{"SPDXID":"SPDXRef-Package-%d","name":"pkg-%d","versionInfo":"1.0.%d"}`, i, i, i)
		}
		big.WriteString(`]}`)
		bigFile := e.file(t, "big.spdx.json", big.String())
		before := runSignet(t, nil, "tree", digestRef, "-o", "json").want(t, 0).stdout
		r = e.sign(t, nil, "attest", tagRef, "--predicate", bigFile, "--type", "spdxjson").want(t, 1)
		if !strings.Contains(r.stderr, "attestation store") || !strings.Contains(r.stderr, fmt.Sprintf("larger than the limit of %d bytes", storeLimit)) {
			t.Errorf("stderr should name the store limit:\n%s", r.stderr)
		}
		if after := runSignet(t, nil, "tree", digestRef, "-o", "json").want(t, 0).stdout; after != before {
			t.Errorf("a refused attestation changed what is attached:\n%s\n---\n%s", before, after)
		}
	})

	t.Run("legacy tags", func(t *testing.T) {
		legacyRef := reg.Ref("acme/legacy:v1")
		ld := pushImage(t, legacyRef)
		var res imageSignResult
		e.sign(t, nil, "sign", legacyRef, "--legacy-tags", "-o", "json").want(t, 0).decode(t, &res)
		wantSig := reg.Ref("acme/legacy:" + strings.Replace(ld, ":", "-", 1) + ".sig")
		if got := res.Signed[0].LegacyTags; len(got) != 1 || got[0] != wantSig {
			t.Errorf("legacy tags %v, want %s", got, wantSig)
		}
		pred := e.file(t, "prov.json", slsaPredicate)
		e.sign(t, nil, "attest", legacyRef, "--legacy-tags", "--predicate", pred, "--type", "slsaprovenance1", "-o", "json").want(t, 0).decode(t, &res)
		if got := res.Signed[0].LegacyTags; len(got) != 1 || !strings.HasSuffix(got[0], ".att") {
			t.Errorf("legacy tags %v, want the .att tag", got)
		}
		var tr treeResult
		runSignet(t, nil, "tree", legacyRef, "-o", "json").want(t, 0).decode(t, &tr)
		sources := map[string]string{}
		for _, it := range tr.Subjects[0].Items {
			sources[it.Source] = it.Kind + " " + it.Identity
		}
		for src, want := range map[oci.Source]string{
			oci.SourceReferrersTag: "", oci.SourceLegacySig: "signature " + e.identity, oci.SourceLegacyAtt: "attestation " + e.identity,
		} {
			if got, ok := sources[string(src)]; !ok || (want != "" && got != want) {
				t.Errorf("tree %s: %q, want %q (all: %v)", src, got, want, sources)
			}
		}
		// verify reports the legacy layer as unverifiable and passes on the bundle.
		var v imageVerifyResult
		runSignet(t, nil, verifyArgs("verify", legacyRef, "-o", "json")...).want(t, 0).decode(t, &v)
		var ok, legacy int
		for _, a := range v.Subjects[0].Attachments {
			switch {
			case a.Verified && a.Source == string(oci.SourceReferrersTag):
				ok++
			case !a.Verified && a.Source == string(oci.SourceLegacySig) && a.FailedCheck == "bundle":
				legacy++
			}
		}
		if ok != 1 || legacy != 1 {
			t.Errorf("attachments %+v", v.Subjects[0].Attachments)
		}
		e.sign(t, nil, "sign", legacyRef, "--legacy-tags", "--key", e.file(t, "k.pem", "x")).want(t, 2)
	})

	t.Run("tree", func(t *testing.T) {
		var tr treeResult
		runSignet(t, nil, "tree", tagRef, "-o", "json").want(t, 0).decode(t, &tr)
		if len(tr.Subjects) != 1 || tr.Subjects[0].Digest != digestRef || tr.Subjects[0].Path != string(oci.PathReferrersTag) {
			t.Fatalf("%+v", tr)
		}
		kinds := map[string]int{}
		for _, it := range tr.Subjects[0].Items {
			kinds[it.Kind]++
			if it.Identity != e.identity || it.Issuer != e.issuer || len(it.LogIndexes) != 1 || it.Source != string(oci.SourceReferrersTag) {
				t.Errorf("item %+v", it)
			}
			if it.Kind == "signature" && it.LogIndexes[0] != s.LogEntries[0].LogIndex {
				t.Errorf("signature log index %d, signed as %d", it.LogIndexes[0], s.LogEntries[0].LogIndex)
			}
		}
		if kinds["signature"] != 1 || kinds["sbom"] != 2 || kinds["attestation"] != 2 {
			t.Errorf("kinds %v, want 1 signature, 2 sbom, 2 attestation", kinds)
		}
		out := runSignet(t, nil, "tree", tagRef).want(t, 0).stdout
		for _, want := range []string{digestRef, "signature", "sbom https://spdx.dev/Document", "log index", e.identity, "referrers tag"} {
			if !strings.Contains(out, want) {
				t.Errorf("tree lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("copy then verify at the destination", func(t *testing.T) {
		dst := ocitest.StartReferrersAPI(t)
		var cr copyResult
		runSignet(t, nil, "copy", tagRef, dst.Ref("mirror/app:v1"), "-o", "json").want(t, 0).decode(t, &cr)
		if cr.Destination != dst.Ref("mirror/app@"+digest) || len(cr.Referrers) != 5 || cr.Path != string(oci.PathReferrersAPI) {
			t.Errorf("copy %+v", cr)
		}
		var v imageVerifyResult
		runSignet(t, nil, verifyArgs("verify", dst.Ref("mirror/app:v1"), "-o", "json")...).want(t, 0).decode(t, &v)
		if a := v.Subjects[0].Attachments; len(a) != 1 || a[0].Source != string(oci.SourceReferrersAPI) {
			t.Errorf("at the destination: %+v", a)
		}
		runSignet(t, nil, verifyArgs("verify-attestation", dst.Ref("mirror/app:v1"), "--type", "cyclonedx")...).want(t, 0)
	})
}

func TestImageRecursiveReferrersAPI(t *testing.T) {
	e := newImageEnv(t)
	reg := ocitest.StartReferrersAPI(t)
	ref := reg.Ref("acme/multi:v1")
	idx, platforms := pushIndex(t, ref)

	var res imageSignResult
	r := e.sign(t, nil, "sign", "-r", ref, "-o", "json").want(t, 0)
	r.decode(t, &res)
	if len(res.Signed) != 3 || res.Signed[0].Digest != reg.Ref("acme/multi@"+idx) {
		t.Fatalf("signed %+v, want the index and 2 platforms", res.Signed)
	}
	for i, p := range platforms {
		s := res.Signed[i+1]
		if s.Digest != reg.Ref("acme/multi@"+p) || !strings.HasPrefix(s.Platform, "linux/") || s.Path != string(oci.PathReferrersAPI) {
			t.Errorf("platform %d: %+v", i, s)
		}
	}
	if strings.Contains(r.stderr, "info: registry") {
		t.Errorf("a registry with the referrers API needs no fallback note:\n%s", r.stderr)
	}
	var v imageVerifyResult
	runSignet(t, nil, append([]string{"verify", "-r", ref, "-o", "json"}, e.policy()...)...).want(t, 0).decode(t, &v)
	if len(v.Subjects) != 3 {
		t.Fatalf("%+v", v)
	}
	for _, s := range v.Subjects {
		if !s.Verified || len(s.Attachments) != 1 || s.Attachments[0].Source != string(oci.SourceReferrersAPI) {
			t.Errorf("subject %+v", s)
		}
	}
	// Each platform manifest verifies on its own, as a runtime resolves it.
	runSignet(t, nil, append([]string{"verify", reg.Ref("acme/multi@" + platforms[1])}, e.policy()...)...).want(t, 0)

	pred := e.file(t, "prov.json", slsaPredicate)
	e.sign(t, nil, "attest", "-r", ref, "--predicate", pred, "--type", "slsaprovenance1", "-o", "json").want(t, 0).decode(t, &res)
	if len(res.Signed) != 3 {
		t.Errorf("attested %d manifests, want 3", len(res.Signed))
	}
	runSignet(t, nil, append([]string{"verify-attestation", "-r", ref, "--type", "slsaprovenance1"}, e.policy()...)...).want(t, 0)

	// An index signed without -r: the index verifies, its platforms do not.
	ref2 := reg.Ref("acme/multi:v2")
	pushIndex(t, ref2)
	r = e.sign(t, nil, "sign", ref2).want(t, 0)
	if !strings.Contains(r.stderr, "pass -r to sign each platform too") {
		t.Errorf("stderr should point at -r:\n%s", r.stderr)
	}
	runSignet(t, nil, append([]string{"verify", ref2}, e.policy()...)...).want(t, 0)
	r = runSignet(t, nil, append([]string{"verify", "-r", ref2, "-o", "json"}, e.policy()...)...).want(t, 1)
	r.decode(t, &v)
	if v.Verified || v.FailedCheck != string(pipeline.CheckAttachment) || !v.Subjects[0].Verified || v.Subjects[1].Verified {
		t.Errorf("%+v", v)
	}
	var tr treeResult
	runSignet(t, nil, "tree", ref, "-o", "json").want(t, 0).decode(t, &tr)
	if len(tr.Subjects) != 3 || tr.Subjects[1].Platform == "" || len(tr.Subjects[1].Items) != 2 || tr.Subjects[0].Path != string(oci.PathReferrersAPI) {
		t.Errorf("tree %+v", tr)
	}
}

// denyWrites is a loopback proxy in front of a registry that refuses every
// write as registries do for a read-only account (403 DENIED).
func denyWrites(t *testing.T, reg *ocitest.Registry) string {
	u, _ := url.Parse("http://" + reg.Host)
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestImageRefusals(t *testing.T) {
	e := newImageEnv(t)
	reg := ocitest.Start(t)
	ref := reg.Ref("acme/app:v1")
	pushImage(t, ref)

	t.Run("not found", func(t *testing.T) {
		for _, args := range [][]string{
			{"sign", reg.Ref("acme/nothing:v1"), "--identity-token", e.token},
			{"tree", reg.Ref("acme/app:nope")},
			append([]string{"verify", reg.Ref("acme/app:nope")}, e.policy()...),
		} {
			r := runSignet(t, e.serverEnv, append(args, "--allow-insecure-registry")...).want(t, 1)
			if !strings.Contains(r.stderr, "not found in registry "+reg.Host) {
				t.Errorf("%v: stderr %s", args, r.stderr)
			}
		}
	})

	t.Run("push denied", func(t *testing.T) {
		host := denyWrites(t, reg)
		r := e.sign(t, nil, "sign", host+"/acme/app:v1").want(t, 1)
		if !strings.Contains(r.stderr, "no permission to push to "+host+"/acme/app") || !strings.Contains(r.stderr, "docker login") {
			t.Errorf("stderr: %s", r.stderr)
		}
	})

	t.Run("credentials from docker config", func(t *testing.T) {
		auth := ocitest.Start(t, ocitest.WithHTPasswd("ci", "s3cret"))
		cfgDir := t.TempDir()
		writeDockerConfig := func(user, pass string) {
			cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, auth.Host, base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
			if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		dockerEnv := []string{"DOCKER_CONFIG=" + cfgDir}
		img, _ := random.Image(256, 1)
		dst, _ := name.ParseReference(auth.Ref("acme/private:v1"), name.Insecure)
		if err := remote.Write(dst, img, remote.WithAuth(&authn.Basic{Username: "ci", Password: "s3cret"})); err != nil {
			t.Fatal(err)
		}
		writeDockerConfig("ci", "wrong")
		r := e.sign(t, dockerEnv, "sign", auth.Ref("acme/private:v1")).want(t, 1)
		if !strings.Contains(r.stderr, "no permission to pull from "+auth.Ref("acme/private")) {
			t.Errorf("stderr: %s", r.stderr)
		}
		writeDockerConfig("ci", "s3cret")
		e.sign(t, dockerEnv, "sign", auth.Ref("acme/private:v1")).want(t, 0)
		runSignet(t, dockerEnv, append([]string{"verify", auth.Ref("acme/private:v1")}, e.policy()...)...).want(t, 0)
	})

	t.Run("image changed between resolve and attach", func(t *testing.T) {
		moving := reg.Ref("acme/app:moving")
		first := pushImage(t, moving)
		beforeAttach = func(*oci.Subject) { pushImage(t, moving) }
		defer func() { beforeAttach = nil }()
		root := newRootCmd()
		var stdout, stderr bytes.Buffer
		root.SetOut(&stdout)
		root.SetErr(&stderr)
		root.SetArgs([]string{"sign", moving, "--server", e.p.URL, "--identity-token", e.token})
		err := root.ExecuteContext(context.Background())
		if err == nil || !strings.Contains(err.Error(), "changed while signing: it was "+first) || !strings.Contains(err.Error(), "nothing was attached") {
			t.Fatalf("err %v", err)
		}
		var v imageVerifyResult
		r := runSignet(t, nil, append([]string{"verify", reg.Ref("acme/app@" + first), "-o", "json"}, e.policy()...)...).want(t, 1)
		r.decode(t, &v)
		if v.FailedCheck != string(pipeline.CheckAttachment) {
			t.Errorf("something was attached to the image that moved away: %+v", v)
		}
	})
}

// An SBOM whose bundle could not be attached to an image is refused before
// anything is signed, after one streamed pass over it.
func TestLoadPredicateBundleLimit(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.spdx.json")
	pad := bytes.Repeat([]byte(" "), oci.DefaultMaxBundleSize*3/4)
	if err := os.WriteFile(big, append(append([]byte(`{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT"`), pad...), '}'), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := loadPredicate(big, "https://spdx.dev/Document")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("over the %d-byte limit for a bundle attached to an image", oci.DefaultMaxBundleSize)) {
		t.Fatalf("err %v", err)
	}
	small := filepath.Join(dir, "small.cdx.json")
	os.WriteFile(small, []byte(cdxPredicate), 0o644)
	if b, err := loadPredicate(small, "https://cyclonedx.org/bom"); err != nil || string(b) != cdxPredicate {
		t.Fatalf("%q, %v", b, err)
	}
	if _, err := loadPredicate(small, "https://spdx.dev/Document"); err == nil || !strings.Contains(err.Error(), "pass --type cyclonedx") {
		t.Fatalf("err %v", err)
	}
}

func pushImage(t *testing.T, ref string) string { return ocitest.PushImage(t, ref) }

func pushIndex(t *testing.T, ref string) (string, []string) { return ocitest.PushIndex(t, ref) }
