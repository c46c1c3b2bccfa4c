package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/spf13/pflag"

	"github.com/signet-dev/signet/core/pipeline"
	"github.com/signet-dev/signet/core/sign"
	"github.com/signet-dev/signet/core/verify"
)

// outputFormat is the --output flag every file command shares: "text" for
// people (results on stdout, progress on stderr), "json" for scripts (one
// JSON document on stdout, fields documented in docs/cli.md).
type outputFormat struct{ format string }

func (o *outputFormat) add(f *pflag.FlagSet) {
	f.StringVarP(&o.format, "output", "o", "text", "output format: text or json (stable fields, see docs/cli.md)")
}

func (o *outputFormat) check() error {
	if o.format != "text" && o.format != "json" {
		return usageError{fmt.Errorf("--output %q: use text or json", o.format)}
	}
	return nil
}

func (o *outputFormat) json() bool { return o.format == "json" }

// schemaVersion versions every JSON object the CLI prints (docs/cli.md).
const schemaVersion = 1

// jsonWritten records that a command printed its JSON result, so that a
// failure after it (a verification that printed its report) prints no second
// object.
var jsonWritten atomic.Bool

// writeJSON prints v, a JSON object, with "schemaVersion" as its first field.
func writeJSON(w io.Writer, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(raw) < 2 || raw[0] != '{' {
		return fmt.Errorf("internal: JSON output %T is not an object", v)
	}
	sep := ","
	if string(raw) == "{}" {
		sep = ""
	}
	obj := append([]byte(fmt.Sprintf(`{"schemaVersion":%d%s`, schemaVersion, sep)), raw[1:]...)
	var out bytes.Buffer
	if err := json.Indent(&out, obj, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	jsonWritten.Store(true)
	_, err = w.Write(out.Bytes())
	return err
}

// logEntryJSON is one transparency log entry in --output json.
type logEntryJSON = pipeline.LogEntry

func signedEntries(entries []*protorekor.TransparencyLogEntry) []logEntryJSON {
	return pipeline.SignedEntries(entries)
}

func verifiedEntries(entries []verify.LogEntry) []logEntryJSON {
	return pipeline.VerifiedEntries(entries)
}

func hashName(a protocommon.HashAlgorithm) string {
	switch a {
	case protocommon.HashAlgorithm_SHA2_256:
		return "sha256"
	case protocommon.HashAlgorithm_SHA2_384:
		return "sha384"
	case protocommon.HashAlgorithm_SHA2_512:
		return "sha512"
	}
	return strings.ToLower(a.String())
}

// progressPrinter writes one line per completed signing step, for CI logs.
func progressPrinter(w io.Writer) func(sign.Event) {
	return func(e sign.Event) {
		fmt.Fprintf(w, "  %-12s %s (%s)\n", e.Step, e.Detail, e.Elapsed.Round(time.Millisecond))
	}
}
