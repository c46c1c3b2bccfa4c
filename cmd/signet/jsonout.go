package main

import (
	"errors"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/core/verify"
)

// jsonRequested says whether a command line asks for -o json; it is read
// from the arguments themselves so that a command line cobra cannot parse
// (a usage error) still gets its answer as JSON.
func jsonRequested(args []string) bool {
	for i, a := range args {
		switch a {
		case "--":
			return false
		case "-o", "--output":
			if i+1 < len(args) && args[i+1] == "json" {
				return true
			}
		case "--output=json", "-o=json", "-ojson":
			return true
		}
	}
	return false
}

// errorJSON is what -o json prints for a failure that printed no result
// (docs/cli.md): usage errors, failed signing, unreachable services.
type errorJSON struct {
	Command  string `json:"command"`
	OK       bool   `json:"ok"`
	ExitCode int    `json:"exitCode"`
	Error    string `json:"error"`
	// FailedCheck, Expected and Found are those of a failed verification.
	FailedCheck string `json:"failedCheck,omitempty"`
	Expected    string `json:"expected,omitempty"`
	Found       string `json:"found,omitempty"`
}

// exitCodeOf is the one exit-code rule: 0 success, 2 usage, 1 anything else.
func exitCodeOf(err error) int {
	var (
		ue usageError
		mu monitorUnreachable
	)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &mu):
		return exitUnreachable
	}
	return exitFailed
}

// reportError prints a failure as one JSON object, unless the command
// already printed its result.
func reportError(w io.Writer, root *cobra.Command, args []string, err error) {
	if !jsonRequested(args) || jsonWritten.Load() {
		return
	}
	out := errorJSON{Command: root.Name(), ExitCode: exitCodeOf(err), Error: err.Error()}
	if c, _, ferr := root.Find(args); ferr == nil && c != nil {
		out.Command = c.CommandPath()
	}
	var ve *verify.Error
	if errors.As(err, &ve) {
		out.FailedCheck, out.Expected, out.Found = string(ve.Check), ve.Expected, ve.Found
	}
	_ = writeJSON(w, out)
}

// exitHelp ends the help of every command that does not say more itself.
const exitHelp = `
Exit status: 0 success; 1 the operation failed; 2 usage error (a wrong
flag, argument or input file). With -o json, every outcome is one JSON
object with "schemaVersion"; a failure that printed no result prints
{"command", "ok": false, "exitCode", "error", …} (docs/cli.md).`

// documentExitCodes appends exitHelp to every runnable command's help that
// does not already document its exit status.
func documentExitCodes(c *cobra.Command) {
	for _, sub := range c.Commands() {
		documentExitCodes(sub)
	}
	if c.Runnable() && !strings.Contains(c.Long, "Exit status") {
		if c.Long == "" {
			c.Long = c.Short + "."
		}
		c.Long = strings.TrimRight(c.Long, "\n") + "\n" + exitHelp
	}
}
