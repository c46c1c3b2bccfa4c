package sbom

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

func TestRecognize(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		format    Format
		version   string
		predicate string
	}{
		{"spdx", `{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","packages":[{"name":"a"}]}`, SPDXJSON, "SPDX-2.3", PredicateSPDX},
		{"spdx keys after a large value", `{"packages":[{"name":"a","x":[1,{"y":[2]}]}],"SPDXID":"SPDXRef-DOCUMENT","spdxVersion":"SPDX-2.2"}`, SPDXJSON, "SPDX-2.2", PredicateSPDX},
		{"cyclonedx with BOM and whitespace", "\xef\xbb\xbf \n{\"bomFormat\":\"CycloneDX\",\"specVersion\":\"1.6\",\"components\":[]}", CycloneDXJSON, "1.6", PredicateCycloneDX},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := Recognize(strings.NewReader(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256([]byte(tc.doc))
			if info.Format != tc.format || info.Version != tc.version || info.PredicateType != tc.predicate ||
				info.SHA256 != hex.EncodeToString(sum[:]) || info.Size != int64(len(tc.doc)) {
				t.Errorf("got %+v", info)
			}
			if !IsPredicateType(info.PredicateType) {
				t.Errorf("IsPredicateType(%q) = false", info.PredicateType)
			}
		})
	}
}

func TestRecognizeRefuses(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"empty", "  ", "empty document"},
		{"tag-value", "SPDXVersion: SPDX-2.3\nDataLicense: CC0-1.0\n", "not a JSON document"},
		{"xml", `<?xml version="1.0"?><bom xmlns="http://cyclonedx.org/schema/bom/1.5"/>`, "XML"},
		{"other json", `{"name":"not an sbom","version":"1"}`, "neither SPDX JSON"},
		{"array", `[1,2]`, "not a JSON document"},
		{"spdx 3", `{"@context":"https://spdx.org/rdf/3.0.1/spdx-context.jsonld","@graph":[]}`, "SPDX 3"},
		{"spdx without id", `{"spdxVersion":"SPDX-2.3","name":"x"}`, "no SPDXID"},
		{"spdx 1", `{"spdxVersion":"SPDX-1.2","SPDXID":"SPDXRef-DOCUMENT"}`, "not SPDX 2.x"},
		{"other bomFormat", `{"bomFormat":"Other","specVersion":"1"}`, `not "CycloneDX"`},
		{"cyclonedx without specVersion", `{"bomFormat":"CycloneDX","components":[]}`, "without specVersion"},
		{"truncated", `{"bomFormat":"CycloneDX","components":[{"a":`, "not valid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := Recognize(strings.NewReader(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Recognize = %+v, %v; want error containing %q", info, err, tc.want)
			}
		})
	}
	if !IsPredicateType("https://spdx.dev/Document/v2.3") || IsPredicateType("https://slsa.dev/provenance/v1") {
		t.Error("IsPredicateType misclassifies")
	}
}

// generated streams a CycloneDX document of n components without holding it.
type generated struct {
	parts func(i int) string
	n, i  int
	buf   []byte
}

func (g *generated) Read(p []byte) (int, error) {
	for len(g.buf) == 0 {
		if g.i > g.n+1 {
			return 0, io.EOF
		}
		g.buf = []byte(g.parts(g.i))
		g.i++
	}
	n := copy(p, g.buf)
	g.buf = g.buf[n:]
	return n, nil
}

// countingWriter tracks the largest single read to show the document is
// streamed, not buffered whole.
type maxReadReader struct {
	r   io.Reader
	max int
}

func (m *maxReadReader) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	if n > m.max {
		m.max = n
	}
	return n, err
}

func TestRecognizeLargeSBOMOnePass(t *testing.T) {
	const n = 150_000 // ~30 MB
	parts := func(i int) string {
		switch {
		case i == 0:
			return `{"bomFormat":"CycloneDX","specVersion":"1.5","serialNumber":"urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79","components":[`
		case i == n+1:
			return `]}`
		}
		sep := ","
		if i == n {
			sep = ""
		}
		return fmt.Sprintf(`{"type":"library","name":"component-%06d","version":"1.%d.0","purl":"pkg:golang/example.com/component-%06d@v1.%d.0","description":"%s"}%s`, i, i%97, i, i%97, strings.Repeat("x", 70), sep)
	}
	// Hash the same stream independently for the expected digest and size.
	h := sha256.New()
	size, err := io.Copy(h, &generated{parts: parts, n: n})
	if err != nil {
		t.Fatal(err)
	}
	if size < 25<<20 {
		t.Fatalf("generated only %d bytes", size)
	}
	src := &maxReadReader{r: &generated{parts: parts, n: n}}
	start := time.Now()
	info, err := Recognize(src)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("recognised and hashed %d MB in %v", size>>20, time.Since(start))
	if info.Format != CycloneDXJSON || info.Size != size || info.SHA256 != hex.EncodeToString(h.Sum(nil)) {
		t.Errorf("got %+v, want size %d", info, size)
	}
	if src.max > 1<<20 {
		t.Errorf("largest read was %d bytes; the document was not streamed", src.max)
	}
}
