package trust_test

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	prototrust "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/signet-dev/signet/core/trust"
)

// The trust material parsers read files a user downloads or is handed; the
// fuzz targets hold them to: a document either parses or is refused with an
// error (never both, never neither), what parses satisfies every invariant
// the verifier relies on, and re-encoding what parsed parses again to the
// same value, so the result depends on the document's content and not its
// spelling. Seeds (testdata/fuzz) are the interop trusted root and signing
// config, sigstore-go's and cosign's public-good and test roots, and edge
// cases. For a longer run:
//
//	go test ./core/trust -run '^$' -fuzz '^FuzzParseRoot$' -fuzztime 10m

// fuzzDocument fuzzes parse, a parser of the protojson document msg
// decodes: a document parses or is refused with an error, never both or
// neither; what parses passes check; and re-encoding the decoded message
// parses again to the same value (by summary).
func fuzzDocument[T any](f *testing.F, parse func([]byte) (*T, error), msg func() proto.Message, check func(*testing.T, *T), summary func(*T) string) {
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := parse(data)
		if (v == nil) == (err == nil) {
			t.Fatalf("parse returned a value %v and error %v", v != nil, err)
		}
		if err != nil {
			return
		}
		check(t, v)
		m := msg()
		if err := protojson.Unmarshal(data, m); err != nil {
			t.Fatalf("a document that parsed is not a %T: %v", m, err)
		}
		again, err := protojson.Marshal(m)
		if err != nil {
			t.Fatalf("a document that decoded does not encode again: %v", err)
		}
		v2, err := parse(again)
		if err != nil {
			t.Fatalf("the re-encoded document is refused: %v\n%s", err, again)
		}
		if a, b := summary(v), summary(v2); a != b {
			t.Fatalf("the re-encoded document parses differently:\n%s\nvs\n%s", a, b)
		}
	})
}

// rootSummary is a Root as comparable text: every field the verifier reads.
func rootSummary(r *trust.Root) string {
	var b strings.Builder
	fmt.Fprintf(&b, "mediaType %s\n", r.MediaType)
	for _, cas := range [][]*trust.CA{r.CAs, r.TSAs} {
		for _, c := range cas {
			fmt.Fprintf(&b, "ca %q %q %s root %x", c.URI, c.Subject, c.ValidFor, c.Root.Raw)
			if c.Leaf != nil {
				fmt.Fprintf(&b, " leaf %x", c.Leaf.Raw)
			}
			for _, ic := range c.Intermediates {
				fmt.Fprintf(&b, " intermediate %x", ic.Raw)
			}
			b.WriteString("\n")
		}
		b.WriteString("--\n")
	}
	for _, logs := range []map[string]*trust.Log{r.Logs, r.CTLogs} {
		keys := make([]string, 0, len(logs))
		for k := range logs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			l := logs[k]
			der, _ := x509.MarshalPKIXPublicKey(l.PublicKey)
			fmt.Fprintf(&b, "log %x %q %q %x %08x %v %v %s %q %x\n", k, l.BaseURL, l.Origin, l.ID, l.CheckpointKeyID, l.HashAlgorithm, l.KeyDetails, l.ValidFor, l.Operator, der)
		}
		b.WriteString("--\n")
	}
	return b.String()
}

func checkValidFor(t *testing.T, what string, r trust.TimeRange) {
	if r.Start.IsZero() || (!r.End.IsZero() && r.End.Before(r.Start)) {
		t.Fatalf("%s: accepted validity %s", what, r)
	}
}

func checkRoot(t *testing.T, r *trust.Root) {
	if r.MediaType != trust.RootMediaTypeV01 && r.MediaType != trust.RootMediaTypeV02 {
		t.Fatalf("accepted media type %q", r.MediaType)
	}
	if len(r.CAs) == 0 {
		t.Fatal("accepted a root without certificate authorities")
	}
	for _, cas := range [][]*trust.CA{r.CAs, r.TSAs} {
		for _, c := range cas {
			checkValidFor(t, "CA "+c.URI, c.ValidFor)
			if c.Root == nil || c.Roots() == nil || c.IntermediatePool() == nil {
				t.Fatalf("CA %s: no root certificate or pools", c.URI)
			}
			if c.Leaf != nil && c.Leaf.IsCA {
				t.Fatalf("CA %s: a CA certificate taken as the TSA leaf", c.URI)
			}
		}
	}
	for _, logs := range []map[string]*trust.Log{r.Logs, r.CTLogs} {
		for k, l := range logs {
			if k != string(l.ID) || len(l.ID) == 0 {
				t.Fatalf("log %s is keyed %x but has ID %x", l.BaseURL, k, l.ID)
			}
			checkValidFor(t, "log "+l.BaseURL, l.ValidFor)
			u, err := url.Parse(l.BaseURL)
			if err != nil || l.Origin == "" || u.Hostname() != l.Origin {
				t.Fatalf("log %s: origin %q is not the host of its base URL", l.BaseURL, l.Origin)
			}
			if id, err := trust.NoteKeyHash(l.Origin, l.PublicKey); err != nil || id != l.CheckpointKeyID {
				t.Fatalf("log %s: checkpoint key ID %08x, the key hashes to %08x (%v)", l.BaseURL, l.CheckpointKeyID, id, err)
			}
			if !slices.Contains([]crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512}, l.HashAlgorithm) {
				t.Fatalf("log %s: hash algorithm %v", l.BaseURL, l.HashAlgorithm)
			}
		}
	}
	for id, l := range r.Logs {
		if got, ok := r.Log([]byte(id)); !ok || got != l {
			t.Fatalf("Log(%x) does not find the log", id)
		}
	}
}

func FuzzParseRoot(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot.v0.2+json"}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot.v0.2+json","certificateAuthorities":[{"certChain":{"certificates":[]}}]}`))
	fuzzDocument(f, trust.ParseRoot, func() proto.Message { return &prototrust.TrustedRoot{} }, checkRoot, rootSummary)
}

var selectorModes = map[string]bool{"ALL": true, "ANY": true, "EXACT": true}

func checkServices(t *testing.T, kind string, services []trust.Service, sel *trust.Selector) {
	for _, s := range services {
		u, err := url.Parse(s.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			t.Fatalf("%s: accepted service URL %q", kind, s.URL)
		}
		if s.MajorAPIVersion == 0 {
			t.Fatalf("%s %s: accepted major API version 0", kind, s.URL)
		}
		checkValidFor(t, kind+" "+s.URL, s.ValidFor)
		// Selecting at a service's start with its version finds it or a
		// service that starts later, newest version and start first.
		got, err := trust.Select(services, s.ValidFor.Start, s.MajorAPIVersion)
		if err != nil {
			t.Fatalf("%s %s: not selectable at its own start: %v", kind, s.URL, err)
		}
		for i, g := range got {
			if !g.ValidFor.Contains(s.ValidFor.Start) || g.MajorAPIVersion != s.MajorAPIVersion {
				t.Fatalf("%s: Select chose %+v, not valid at %s with version %d", kind, g, s.ValidFor.Start, s.MajorAPIVersion)
			}
			if i > 0 && g.ValidFor.Start.After(got[i-1].ValidFor.Start) {
				t.Fatalf("%s: Select did not order by start, newest first", kind)
			}
		}
	}
	if sel == nil {
		return
	}
	switch {
	case sel.Mode == "" && len(services) > 0:
		t.Fatalf("%s: services listed without a selector", kind)
	case sel.Mode != "" && !selectorModes[sel.Mode]:
		t.Fatalf("%s: selector mode %q", kind, sel.Mode)
	case (sel.Mode == "EXACT") != (sel.Count > 0):
		t.Fatalf("%s: selector %+v", kind, *sel)
	}
}

func checkSigningConfig(t *testing.T, sc *trust.SigningConfig) {
	checkServices(t, "caUrls", sc.CAs, nil)
	checkServices(t, "oidcUrls", sc.OIDCProviders, nil)
	checkServices(t, "rekorTlogUrls", sc.RekorLogs, &sc.RekorSelector)
	checkServices(t, "tsaUrls", sc.TSAs, &sc.TSASelector)
}

func FuzzParseSigningConfig(f *testing.F) {
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.signingconfig.v0.2+json"}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.signingconfig.v0.2+json","rekorTlogUrls":[{"url":"https://r","majorApiVersion":2,"validFor":{"start":"2026-01-01T00:00:00Z","end":"2025-01-01T00:00:00Z"}}],"rekorTlogConfig":{"selector":"EXACT","count":1}}`))
	fuzzDocument(f, trust.ParseSigningConfig, func() proto.Message { return &prototrust.SigningConfig{} }, checkSigningConfig,
		func(sc *trust.SigningConfig) string { return fmt.Sprintf("%+v", *sc) })
}
