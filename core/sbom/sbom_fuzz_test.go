package sbom

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// FuzzRecognize holds Recognize and RecognizeFile to, on arbitrary bytes:
// an answer is an Info or an error, never both or neither; the answer does
// not depend on how the reader splits the stream, or on reading from a file;
// an accepted document is hashed and counted whole (the digest attested is
// the file's); and what a complete JSON decode of an accepted document says
// agrees with the format and version Recognize reports. Seeds
// (testdata/fuzz/FuzzRecognize) are SPDX 2.2/2.3 documents from spdx/tools-golang
// and the SPDX and CycloneDX SBOMs of cosign's tests, plus the edge cases
// below. For a longer run:
//
//	go test ./core/sbom -run '^$' -fuzz '^FuzzRecognize$' -fuzztime 10m
func FuzzRecognize(f *testing.F) {
	for _, doc := range []string{
		"\xef\xbb\xbf \n{\"bomFormat\":\"CycloneDX\",\"specVersion\":\"1.6\",\"components\":[]}",
		`{"packages":[{"name":"a","x":[1,{"y":[2]}]}],"SPDXID":"SPDXRef-DOCUMENT","spdxVersion":"SPDX-2.2"}`,
		`{"@context":"https://spdx.org/rdf/3.0.1/spdx-context.jsonld","@graph":[]}`,
		`{"bomFormat":"CycloneDX","specVersion":1.5}`,
		`{"spdxVersion":"SPDX-2.3","spdxVersion":"SPDX-1.2","SPDXID":"x"}`,
		`<?xml version="1.0"?><bom/>`,
		// a rejected character outside ASCII: its error must not depend on the split
		"{ \xef\xbb\xbf}",
		`{"bomFormat":"CycloneDX","components":[{"a":`,
	} {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := Recognize(bytes.NewReader(data))
		if (info == nil) == (err == nil) {
			t.Fatalf("Recognize returned info %v and error %v", info, err)
		}
		for name, r := range map[string]io.Reader{
			"one byte at a time": iotest.OneByteReader(bytes.NewReader(data)),
			"half reads":         iotest.HalfReader(bytes.NewReader(data)),
			"EOF with the data":  iotest.DataErrReader(bytes.NewReader(data)),
		} {
			got, gerr := Recognize(r)
			if !reflect.DeepEqual(got, info) || fmt.Sprint(gerr) != fmt.Sprint(err) {
				t.Fatalf("reading %s: %+v, %v; whole: %+v, %v", name, got, gerr, info, err)
			}
		}
		got, ferr := recognizeAsFile(t, data)
		if !reflect.DeepEqual(got, info) || (ferr == nil) != (err == nil) || (err != nil && !strings.HasSuffix(ferr.Error(), err.Error())) {
			t.Fatalf("RecognizeFile: %+v, %v; Recognize: %+v, %v", got, ferr, info, err)
		}
		if err != nil {
			return
		}

		sum := sha256.Sum256(data)
		if info.SHA256 != hex.EncodeToString(sum[:]) || info.Size != int64(len(data)) {
			t.Fatalf("digest %s size %d; the document's are %x and %d", info.SHA256, info.Size, sum, len(data))
		}
		if !IsPredicateType(info.PredicateType) {
			t.Fatalf("predicate type %q is not an SBOM predicate type", info.PredicateType)
		}
		switch info.Format {
		case SPDXJSON:
			if !strings.HasPrefix(info.Version, "SPDX-2.") || info.PredicateType != PredicateSPDX {
				t.Fatalf("SPDX document with %+v", info)
			}
		case CycloneDXJSON:
			if info.Version == "" || info.PredicateType != PredicateCycloneDX {
				t.Fatalf("CycloneDX document with %+v", info)
			}
		default:
			t.Fatalf("format %q", info.Format)
		}
		if trimmed := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
			t.Fatal("accepted a document that is not a JSON object")
		}

		// Recognize stops at the identifying keys; a full decode of a valid
		// document whose top-level keys are unique must agree with it.
		body := bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
		var top map[string]any
		if !json.Valid(body) || json.Unmarshal(body, &top) != nil || !uniqueTopLevelKeys(body) {
			return
		}
		switch info.Format {
		case SPDXJSON:
			if _, id := top["SPDXID"]; top["spdxVersion"] != info.Version || !id {
				t.Fatalf("recognised SPDX %s; the document has spdxVersion %v, SPDXID present %v", info.Version, top["spdxVersion"], id)
			}
		case CycloneDXJSON:
			if top["bomFormat"] != "CycloneDX" || top["specVersion"] != info.Version {
				t.Fatalf("recognised CycloneDX %s; the document has bomFormat %v, specVersion %v", info.Version, top["bomFormat"], top["specVersion"])
			}
		}
	})
}

// recognizeAsFile runs RecognizeFile on data written to a temporary file,
// removed before it returns, so that inputs share no state.
func recognizeAsFile(t *testing.T, data []byte) (*Info, error) {
	t.Helper()
	f, err := os.CreateTemp("", "signet-sbom-fuzz-*.json")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return RecognizeFile(f.Name())
}

// uniqueTopLevelKeys reports whether a valid JSON object names no key twice
// at its top level.
func uniqueTopLevelKeys(doc []byte) bool {
	var fields map[string]json.RawMessage
	if json.Unmarshal(doc, &fields) != nil {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	n := 0
	if _, err := dec.Token(); err != nil {
		return false
	}
	for dec.More() {
		if _, err := dec.Token(); err != nil {
			return false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return false
		}
		n++
	}
	return n == len(fields)
}
