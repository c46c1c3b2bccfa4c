package trust_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/core/trust"
)

func interopFile(t *testing.T, name string) []byte {
	t.Helper()
	p := filepath.Join("..", "..", "..", "shared", "interop", name)
	data, err := os.ReadFile(p)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("interop vectors missing at %s (%v); CI must provide ../shared/interop next to the module root", p, err)
		}
		t.Skipf("interop vectors not found: %v", err)
	}
	return data
}

func TestParseInteropRoot(t *testing.T) {
	r, err := trust.ParseRoot(interopFile(t, "trusted_root.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.CAs) != 1 || len(r.TSAs) != 1 || len(r.Logs) != 1 || len(r.CTLogs) != 0 {
		t.Fatalf("CAs %d TSAs %d logs %d ctlogs %d", len(r.CAs), len(r.TSAs), len(r.Logs), len(r.CTLogs))
	}
	ca := r.CAs[0]
	if ca.Root.Subject.CommonName != "local-fulcio-root" || ca.Leaf != nil || len(ca.Intermediates) != 0 {
		t.Errorf("fulcio CA parsed as root %q leaf %v intermediates %d", ca.Root.Subject.CommonName, ca.Leaf != nil, len(ca.Intermediates))
	}
	if want := time.Date(2026, 11, 25, 6, 7, 13, 0, time.UTC); !ca.ValidFor.Start.Equal(want) || !ca.ValidFor.End.IsZero() {
		t.Errorf("CA validity %s", ca.ValidFor)
	}
	tsa := r.TSAs[0]
	if tsa.Leaf == nil || tsa.Leaf.Subject.CommonName != "Test TSA Timestamping" || len(tsa.Intermediates) != 1 || tsa.Root.Subject.CommonName != "Test TSA Root" {
		t.Errorf("TSA chain split wrongly: leaf %v intermediates %d root %q", tsa.Leaf, len(tsa.Intermediates), tsa.Root.Subject.CommonName)
	}

	// The Rekor v2 log ID is SHA-256(origin || "\n" || 0x01 || Ed25519 key),
	// the full-length form of the C2SP signed-note key ID; its first four
	// bytes are the checkpoint key hash.
	for _, l := range r.Logs {
		if l.Origin != "127.0.0.1" {
			t.Errorf("origin %q, want the host of %s", l.Origin, l.BaseURL)
		}
		key := l.PublicKey.(ed25519.PublicKey)
		sum := sha256.Sum256(append([]byte(l.Origin+"\n\x01"), key...))
		if string(sum[:]) != string(l.ID) {
			t.Errorf("log ID %x is not the signed-note key ID %x", l.ID, sum)
		}
		if l.CheckpointKeyID != binary.BigEndian.Uint32(l.ID) {
			t.Errorf("checkpoint key hash %08x, want %x", l.CheckpointKeyID, l.ID[:4])
		}
		if got, ok := r.Log(l.ID); !ok || got != l {
			t.Error("Log lookup by ID failed")
		}
	}
}

func TestRootRejectsBadInput(t *testing.T) {
	good := string(interopFile(t, "trusted_root.json"))
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"media type", "trustedroot+json;version=0.1", "trustedroot+json;version=9", "unsupported mediaType"},
		{"log key", `"rawBytes":"MCowBQYDK2VwAyEArI1i`, `"rawBytes":"AAowBQYDK2VwAyEArI1i`, "not a PKIX public key"},
		{"key details", `"keyDetails":"PKIX_ED25519"`, `"keyDetails":"PKIX_ECDSA_P256_SHA_256"`, "does not match"},
		{"log ID", `"logId":{"keyId":"d8Sv9bUIlx33gCJxLB1BH3HYx+wTOkEiWMaSWHq29IQ="}`, `"logId":{}`, "logId.keyId is missing"},
		{"hash algorithm", `"hashAlgorithm":"SHA2_256"`, `"hashAlgorithm":"SHA3_256"`, "unsupported hashAlgorithm"},
		{"CA validity", `"validFor":{"start":"2026-11-25T06:07:13Z"}`, `"validFor":{}`, "validFor.start is missing"},
		{"CA certificate", `"rawBytes":"MIIB0jCCAXigAwIBAgIUJz/C`, `"rawBytes":"AAAB0jCCAXigAwIBAgIUJz/C`, "does not parse"},
		{"not JSON", `{`, `[`, "not a trusted_root.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(good, tc.old) {
				t.Fatalf("fixture lacks %q", tc.old)
			}
			_, err := trust.ParseRoot([]byte(strings.Replace(good, tc.old, tc.new, 1)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
	// A TSA chain whose certificates do not link is refused.
	broken := strings.Replace(good, `{"rawBytes":"MIIB0jCCAXigAwIBAgIUCUBX`, `{"rawBytes":"MIIB0jCCAXigAwIBAgIUJz/Cd6wmNcsKXaka578X51WRyMMwCgYIKoZIzj0EAwIwLDEOMAwGA1UECgwFbG9jYWwxGjAYBgNVBAMMEWxvY2FsLWZ1bGNpby1yb290MB4XDTI2MTEyNTA2MDcxM1oXDTM2MTEyMjA2MDcxM1owLDEOMAwGA1UECgwFbG9jYWwxGjAYBgNVBAMMEWxvY2FsLWZ1bGNpby1yb290MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAECcvDl61k5uwmMQ8leNGYSM1mvIXaNloyIJKQOJoaQdL8PK6rbvG7kuMCSjmiRYF+JgMe45P+mb8exo2CrARffKN4MHYwHQYDVR0OBBYEFBpahDDcz9RpldXmj5uf2WvUumkRMB8GA1UdIwQYMBaAFBpahDDcz9RpldXmj5uf2WvUumkRMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgEGMBMGA1UdJQQMMAoGCCsGAQUFBwMDMAoGCCqGSM49BAMCA0gAMEUCIQCu3LkObw/kbl1NfrqTvN08x6fbLWlKyI+/9IFpUGpdnQIgJu1uESBANFu34RPocqYtmxizvFLhjPpl2euwZD/w+DA="},{"rawBytes":"MIIB0jCCAXigAwIBAgIUCUBX`, 1)
	if _, err := trust.ParseRoot([]byte(broken)); err == nil || !strings.Contains(err.Error(), "is not signed by") {
		t.Fatalf("unlinked TSA chain: %v", err)
	}
}

func TestTimeRange(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	open := trust.TimeRange{Start: t0}
	closed := trust.TimeRange{Start: t0, End: t0.Add(time.Hour)}
	if open.Contains(t0.Add(-time.Second)) || !open.Contains(t0) || !open.Contains(t0.AddDate(10, 0, 0)) {
		t.Error("open range")
	}
	if !closed.Contains(t0.Add(time.Hour)) || closed.Contains(t0.Add(time.Hour+time.Second)) {
		t.Error("closed range")
	}
}

func TestSigningConfig(t *testing.T) {
	data := interopFile(t, "signing_config.json")
	sc, err := trust.ParseSigningConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.CAs) != 1 || sc.CAs[0].URL != "http://127.0.0.1:5555" || sc.CAs[0].MajorAPIVersion != 1 {
		t.Errorf("CAs %+v", sc.CAs)
	}
	if len(sc.RekorLogs) != 1 || sc.RekorLogs[0].MajorAPIVersion != 2 || sc.RekorSelector.Mode != "ANY" {
		t.Errorf("rekor %+v %+v", sc.RekorLogs, sc.RekorSelector)
	}
	if len(sc.TSAs) != 1 || sc.TSASelector.Mode != "ANY" {
		t.Errorf("TSAs %+v", sc.TSAs)
	}
	now := time.Date(2026, 11, 25, 7, 0, 0, 0, time.UTC)
	if got, err := trust.Select(sc.RekorLogs, now, 1, 2); err != nil || got[0].URL != "http://127.0.0.1:3003" {
		t.Errorf("select rekor v2: %v %v", got, err)
	}
	if _, err := trust.Select(sc.RekorLogs, now, 1); err == nil {
		t.Error("selected a v2 log for a v1-only client")
	}
	if _, err := trust.Select(sc.RekorLogs, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), 2); err == nil {
		t.Error("selected a log before its validity")
	}

	good := string(data)
	for _, tc := range []struct{ name, old, new, want string }{
		{"media type", "signingconfig.v0.2+json", "signingconfig.v0.1+json", "unsupported mediaType"},
		{"url", `"url":"http://127.0.0.1:5555"`, `"url":"127.0.0.1:5555"`, "is not an http(s) URL"},
		{"api version", `"majorApiVersion":2`, `"majorApiVersion":0`, "majorApiVersion is missing"},
		{"selector", `"rekorTlogConfig":{"selector":"ANY"}`, `"rekorTlogConfig":{"selector":"EXACT"}`, "count is 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(good, tc.old) {
				t.Fatalf("fixture lacks %q", tc.old)
			}
			_, err := trust.ParseSigningConfig([]byte(strings.Replace(good, tc.old, tc.new, 1)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
}
