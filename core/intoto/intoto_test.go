package intoto

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/signet-dev/signet/core/signer"
)

func TestPredicateType(t *testing.T) {
	for in, want := range map[string]string{
		"slsaprovenance1":                  "https://slsa.dev/provenance/v1",
		"spdxjson":                         "https://spdx.dev/Document",
		"CycloneDX":                        "https://cyclonedx.org/bom",
		"https://example.com/predicate/v1": "https://example.com/predicate/v1",
	} {
		if got, err := PredicateType(in); err != nil || got != want {
			t.Errorf("PredicateType(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"slsaprovenance9", "not a uri", "/relative/path"} {
		if _, err := PredicateType(bad); err == nil || !strings.Contains(err.Error(), "slsaprovenance1") {
			t.Errorf("PredicateType(%q) err = %v", bad, err)
		}
	}
}

var subject = []Subject{{Name: "app.tar.gz", Digest: map[string]string{"sha256": strings.Repeat("ab", 32)}}}

func TestPredicateChecks(t *testing.T) {
	prov, err := os.ReadFile("../../../shared/interop/provenance-predicate.json")
	if err != nil {
		t.Fatal(err)
	}
	ok := map[string]string{
		PredicateSLSAProvenanceV1:  string(prov),
		PredicateSPDX:              `{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"app"}`,
		PredicateCycloneDX:         `{"bomFormat":"CycloneDX","specVersion":"1.5","components":[]}`,
		"https://example.com/x/v1": `{"anything":[1,2,3]}`,
	}
	for typ, pred := range ok {
		if _, err := NewStatement(subject, typ, []byte(pred)); err != nil {
			t.Errorf("%s: %v", typ, err)
		}
	}
	bad := []struct{ typ, pred, want string }{
		{PredicateSPDX, `{"bomFormat":"CycloneDX","specVersion":"1.5"}`, "not an SPDX JSON document"},
		{PredicateSPDX, `{"@context":"https://spdx.org/rdf/3.0.1/spdx-context.jsonld","@graph":[]}`, "SPDX 3"},
		{PredicateCycloneDX, `{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT"}`, "not a CycloneDX JSON BOM"},
		{PredicateCycloneDX, `<bom xmlns="http://cyclonedx.org/schema/bom/1.5"/>`, "must be a JSON object"},
		{PredicateSLSAProvenanceV1, `{"builder":{"id":"x"}}`, "SLSA provenance v1"},
		{PredicateSLSAProvenanceV1, `{"buildDefinition":{"buildType":"x"},"runDetails":{"builder":{"id":""}}}`, "not valid SLSA provenance v1"},
		{"https://example.com/x/v1", `[1,2]`, "must be a JSON object"},
		{"https://example.com/x/v1", `{"a":`, "not valid JSON"},
	}
	for _, c := range bad {
		if _, err := NewStatement(subject, c.typ, []byte(c.pred)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: err = %v, want %q", c.typ, c.pred, err, c.want)
		}
	}
	if _, err := NewStatement(nil, PredicateSPDX, []byte(ok[PredicateSPDX])); err == nil {
		t.Error("statement without subjects accepted")
	}
	if _, err := NewStatement([]Subject{{Name: "x", Digest: map[string]string{"sha256": "ABCD"}}}, "https://e.com/p", []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "64 lower-case hex") {
		t.Errorf("bad digest: %v", err)
	}
}

func TestStatementRoundTripAndDSSE(t *testing.T) {
	st, err := NewStatement(subject, PredicateCycloneDX, []byte(`{"bomFormat":"CycloneDX","specVersion":"1.5"}`))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := MarshalStatement(st)
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	if err := json.Unmarshal(payload, &generic); err != nil {
		t.Fatal(err)
	}
	if generic["_type"] != "https://in-toto.io/Statement/v1" || generic["predicateType"] != PredicateCycloneDX {
		t.Fatalf("statement JSON: %s", payload)
	}
	if _, err := ParseStatement(payload); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseStatement([]byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[]}`)); err == nil {
		t.Fatal("statement without subject parsed")
	}

	s, _ := signer.Ephemeral()
	env, err := SignEnvelope(context.Background(), s, PayloadType, payload)
	if err != nil {
		t.Fatal(err)
	}
	if env.GetPayloadType() != PayloadType || string(env.GetPayload()) != string(payload) || len(env.GetSignatures()) != 1 {
		t.Fatalf("envelope %v", env)
	}
	// Verify with go-securesystemslib's DSSE verifier, over the PAE.
	ev, err := dsse.NewEnvelopeVerifier(ecdsaVerifier{s.Public().(*ecdsa.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	wire := &dsse.Envelope{PayloadType: env.GetPayloadType(), Payload: base64.StdEncoding.EncodeToString(env.GetPayload()),
		Signatures: []dsse.Signature{{Sig: base64.StdEncoding.EncodeToString(env.GetSignatures()[0].GetSig())}}}
	if _, err := ev.Verify(context.Background(), wire); err != nil {
		t.Fatalf("DSSE verification: %v", err)
	}
	wire.Payload = base64.StdEncoding.EncodeToString(append(payload, ' '))
	if _, err := ev.Verify(context.Background(), wire); err == nil {
		t.Fatal("changed payload verified")
	}
}

var errVerify = errors.New("signature does not verify")

type ecdsaVerifier struct{ pub *ecdsa.PublicKey }

func (v ecdsaVerifier) Verify(_ context.Context, data, sig []byte) error {
	d := sha256.Sum256(data)
	if !ecdsa.VerifyASN1(v.pub, d[:], sig) {
		return errVerify
	}
	return nil
}
func (v ecdsaVerifier) KeyID() (string, error)   { return "", nil }
func (v ecdsaVerifier) Public() crypto.PublicKey { return v.pub }

// The PAE of cosign v3's provenance bundle hashes to the digest its
// hashedrekord entry logged: the same construction signet uses.
func TestPAEMatchesCosign(t *testing.T) {
	raw, err := os.ReadFile("../../../shared/interop/cosign3-github-provenance.sigstore.json")
	if err != nil {
		t.Fatal(err)
	}
	var b protobundle.Bundle
	if err := protojson.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(PAE(b.GetDsseEnvelope()))
	var body struct {
		Spec struct {
			HashedRekordV002 struct {
				Data struct {
					Digest string `json:"digest"`
				} `json:"data"`
			} `json:"hashedRekordV002"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(b.GetVerificationMaterial().GetTlogEntries()[0].GetCanonicalizedBody(), &body); err != nil {
		t.Fatal(err)
	}
	logged, _ := base64.StdEncoding.DecodeString(body.Spec.HashedRekordV002.Data.Digest)
	if hex.EncodeToString(logged) != hex.EncodeToString(sum[:]) {
		t.Fatalf("logged digest %x, PAE digest %x", logged, sum)
	}
	if _, err := ParseStatement(b.GetDsseEnvelope().GetPayload()); err != nil {
		t.Fatalf("cosign's statement: %v", err)
	}
}

// A predicate two parsers could read differently is refused: duplicate
// names (at any depth), invalid UTF-8, a second value after the object.
// What is accepted is embedded as given, compacted, and parses back.
func TestStatementPredicateBytes(t *testing.T) {
	subject := []Subject{{Name: "app", Digest: map[string]string{"sha256": strings.Repeat("ab", 32)}}}
	for _, bad := range []string{`{"a":1,"a":2}`, `{"b":{"a":1,"a":2}}`, `{"a":[{"x":1,"x":1}]}`, "{\"a\":\"\xff\"}", `{"a":1} {"b":2}`, `{"a":1}]`} {
		if _, err := Statement(subject, "https://example.com/x/v1", []byte(bad)); err == nil || !strings.Contains(err.Error(), "not valid JSON") {
			t.Errorf("%q: err = %v, want not valid JSON", bad, err)
		}
	}
	raw, err := Statement(subject, PredicateCycloneDX, []byte("{\n  \"bomFormat\": \"CycloneDX\",\n  \"specVersion\": \"1.5\", \"n\": 1.50, \"s\": \"\\u00e9\"\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"app","digest":{"sha256":"` + strings.Repeat("ab", 32) + `"}}],"predicateType":"https://cyclonedx.org/bom","predicate":{"bomFormat":"CycloneDX","specVersion":"1.5","n":1.50,"s":"\u00e9"}}`
	if string(raw) != want {
		t.Errorf("statement\n got %s\nwant %s", raw, want)
	}
	st, err := ParseStatement(raw)
	if err != nil || st.GetPredicate().GetFields()["bomFormat"].GetStringValue() != "CycloneDX" || st.GetSubject()[0].GetName() != "app" {
		t.Errorf("parsed back %v, %v", st, err)
	}
}

// The header parse checks what ParseStatement checks, except inside the
// predicate, which it only requires to be one well-formed JSON object.
func TestParseStatementHeader(t *testing.T) {
	digest := strings.Repeat("ab", 32)
	good := `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"app","digest":{"sha256":"` + digest + `"}}],"predicateType":"https://cyclonedx.org/bom","predicate":{"bomFormat":"CycloneDX","big":[1,2,3]}}`
	st, err := ParseStatementHeader([]byte(good))
	if err != nil || st.GetPredicateType() != PredicateCycloneDX || st.GetSubject()[0].GetDigest()["sha256"] != digest || len(st.GetPredicate().GetFields()) != 0 {
		t.Fatalf("%v, %v", st, err)
	}
	for name, bad := range map[string]string{
		"not JSON":               `{"_type":`,
		"no subject":             `{"_type":"https://in-toto.io/Statement/v1","predicateType":"x","predicate":{}}`,
		"predicate not object":   strings.Replace(good, `"predicate":{"bomFormat":"CycloneDX","big":[1,2,3]}`, `"predicate":[1]`, 1),
		"broken predicate":       strings.Replace(good, `"big":[1,2,3]`, `"big":[1,2,`, 1),
		"duplicate in predicate": strings.Replace(good, `"big":[1,2,3]`, `"big":1,"big":2`, 1),
		"trailing value":         good + ` {}`,
		"wrong type":             strings.Replace(good, "https://in-toto.io/Statement/v1", "https://example.com/x", 1),
	} {
		if _, err := ParseStatementHeader([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := ParseStatement([]byte(bad)); err == nil && name != "duplicate in predicate" && name != "trailing value" {
			t.Errorf("%s: ParseStatement accepts what the header parse refuses", name)
		}
	}
}
