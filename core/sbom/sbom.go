// Package sbom recognises SBOM documents (SPDX 2.x JSON, CycloneDX JSON)
// and hashes them in the same single streaming pass, so that SBOMs of tens
// of megabytes are never held in memory to be identified.
package sbom

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// Format is an SBOM format.
type Format string

const (
	SPDXJSON      Format = "spdx-json"
	CycloneDXJSON Format = "cyclonedx-json"
)

// In-toto predicate types for SBOM attestations (in-toto attestation
// predicate registry; the ones cosign uses for --type spdxjson / cyclonedx).
const (
	PredicateSPDX      = "https://spdx.dev/Document"
	PredicateCycloneDX = "https://cyclonedx.org/bom"
)

// IsPredicateType reports whether an in-toto predicate type is an SBOM.
func IsPredicateType(pt string) bool {
	return pt == PredicateSPDX || pt == PredicateCycloneDX ||
		strings.HasPrefix(pt, "https://spdx.dev/Document/") || strings.HasPrefix(pt, "https://cyclonedx.org/bom/")
}

// Info describes a recognised SBOM.
type Info struct {
	Format Format
	// Version is spdxVersion (e.g. "SPDX-2.3") or specVersion (e.g. "1.6").
	Version string
	// PredicateType is the in-toto predicate type to attest it with.
	PredicateType string
	// SHA256 is the hex digest of the document's bytes; Size their count.
	SHA256 string
	Size   int64
}

// RecognizeFile recognises and hashes the SBOM at path.
func RecognizeFile(path string) (*Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sbom: %w", err)
	}
	defer f.Close()
	info, err := Recognize(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return info, nil
}

// Recognize reads r once: it identifies the format from the top-level keys
// while hashing every byte, and reads the rest through the hash after the
// format is known. Only the identifying values are ever decoded.
func Recognize(r io.Reader) (*Info, error) {
	h := sha256.New()
	cr := &countingReader{r: io.TeeReader(r, h)}
	br := bufio.NewReaderSize(cr, 64<<10)
	first, err := firstByte(br)
	if err != nil {
		return nil, err
	}
	switch first {
	case '{':
	case '<':
		return nil, errors.New("sbom: this is XML (CycloneDX XML or SPDX RDF); signet accepts SPDX JSON and CycloneDX JSON — convert it, e.g. with cyclonedx-cli or the SPDX tools")
	default:
		return nil, errors.New("sbom: not a JSON document (SPDX tag-value is not accepted); give an SPDX JSON or CycloneDX JSON SBOM")
	}
	dec := jsontext.NewDecoder(wholeRunes{br})
	fields, err := topLevel(dec)
	if err != nil {
		return nil, fmt.Errorf("sbom: not valid JSON: %v", err)
	}
	info, err := identify(fields)
	if err != nil {
		return nil, err
	}
	// The decoder holds read-ahead bytes; they and the rest of the stream
	// were or will be hashed by the tee, so drain what remains.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return nil, fmt.Errorf("sbom: reading: %w", err)
	}
	info.SHA256 = hex.EncodeToString(h.Sum(nil))
	info.Size = cr.n
	return info, nil
}

// identifying keys; everything else is skipped token by token.
var wanted = map[string]bool{"spdxVersion": true, "SPDXID": true, "bomFormat": true, "specVersion": true, "@context": true}

// topLevel scans the top-level object until the identifying keys are
// decided, returning their string values ("" for another kind of value; the
// raw JSON of @context). Everything else is skipped without being built.
func topLevel(dec *jsontext.Decoder) (map[string]string, error) {
	if _, err := dec.ReadToken(); err != nil { // '{'
		return nil, err
	}
	fields := map[string]string{}
	for dec.PeekKind() != '}' {
		t, err := dec.ReadToken()
		if err != nil {
			return nil, err
		}
		key := t.String()
		switch {
		case !wanted[key]:
			if err := dec.SkipValue(); err != nil {
				return nil, err
			}
		case key == "@context" || dec.PeekKind() != '"':
			v, err := dec.ReadValue()
			if err != nil {
				return nil, err
			}
			fields[key] = ""
			if key == "@context" {
				fields[key] = string(v)
			}
		default:
			v, err := dec.ReadToken()
			if err != nil {
				return nil, err
			}
			fields[key] = v.String()
		}
		if decided(fields) {
			return fields, nil
		}
	}
	if _, err := dec.ReadToken(); err != nil { // '}'
		return nil, err
	}
	return fields, nil
}

func decided(f map[string]string) bool {
	_, v := f["spdxVersion"]
	_, id := f["SPDXID"]
	_, bf := f["bomFormat"]
	_, sv := f["specVersion"]
	return (v && id) || (bf && sv)
}

func identify(f map[string]string) (*Info, error) {
	if v, ok := f["spdxVersion"]; ok {
		if !strings.HasPrefix(v, "SPDX-2.") {
			return nil, fmt.Errorf("sbom: spdxVersion %q is not SPDX 2.x; signet accepts SPDX 2.2/2.3 JSON", v)
		}
		if _, ok := f["SPDXID"]; !ok {
			return nil, errors.New("sbom: has spdxVersion but no SPDXID; not a valid SPDX JSON document")
		}
		return &Info{Format: SPDXJSON, Version: v, PredicateType: PredicateSPDX}, nil
	}
	if bf, ok := f["bomFormat"]; ok {
		if bf != "CycloneDX" {
			return nil, fmt.Errorf("sbom: bomFormat is %q, not \"CycloneDX\"", bf)
		}
		sv, ok := f["specVersion"]
		if !ok || sv == "" {
			return nil, errors.New("sbom: CycloneDX document without specVersion")
		}
		return &Info{Format: CycloneDXJSON, Version: sv, PredicateType: PredicateCycloneDX}, nil
	}
	if strings.Contains(f["@context"], "spdx.org/rdf/3") {
		return nil, errors.New("sbom: this is SPDX 3 JSON-LD; signet accepts SPDX 2.x JSON and CycloneDX JSON")
	}
	return nil, errors.New("sbom: JSON document is neither SPDX JSON (spdxVersion, SPDXID) nor CycloneDX JSON (bomFormat \"CycloneDX\", specVersion)")
}

func firstByte(br *bufio.Reader) (byte, error) {
	// A UTF-8 byte order mark is tolerated, as some SBOM tools on Windows write one.
	if bom, err := br.Peek(3); err == nil && string(bom) == "\xef\xbb\xbf" {
		_, _ = br.Discard(3)
	}
	for {
		b, err := br.ReadByte()
		if err == io.EOF {
			return 0, errors.New("sbom: empty document")
		}
		if err != nil {
			return 0, fmt.Errorf("sbom: reading: %w", err)
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return b, br.UnreadByte()
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// wholeRunes never ends a read inside a UTF-8 sequence the stream goes on
// to complete: jsontext quotes the character it rejects as far as its
// buffer holds it, so without this the same document gets a different error
// depending on how the reader happens to split it.
type wholeRunes struct{ br *bufio.Reader }

func (w wholeRunes) Read(p []byte) (int, error) {
	if len(p) < utf8.UTFMax {
		return w.br.Read(p)
	}
	n, err := w.br.Read(p[:len(p)-utf8.UTFMax+1])
	if err != nil || n == 0 {
		return n, err
	}
	start := n - 1
	for start > 0 && start > n-utf8.UTFMax && !utf8.RuneStart(p[start]) {
		start--
	}
	for !utf8.FullRune(p[start:n]) {
		b, err := w.br.ReadByte()
		if err != nil {
			return n, err
		}
		p[n] = b
		n++
	}
	return n, nil
}
