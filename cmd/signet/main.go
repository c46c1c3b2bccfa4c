// Command signet is keyless signing and provenance for CI: it signs and
// attests artifacts, verifies them offline, and runs the bundled server (a
// private Sigstore in one binary).
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/core/sign/transport"
	"github.com/signet-dev/signet/server"
)

// Exit codes scripts can rely on.
const (
	exitOK     = 0
	exitFailed = 1 // the operation ran and failed (verification failed, server error…)
	exitUsage  = 2 // the command line was wrong
	// exitUnreachable: 'log monitor --once' could not make its check, told
	// apart from an inconsistency it found.
	exitUnreachable = 3
)

// usageError marks errors caused by how the command was called.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func main() {
	transport.Version = version
	server.Version = version
	root := newRootCmd()
	if err := root.Execute(); err != nil {
		err = withRemedy(err)
		fmt.Fprintln(os.Stderr, "Error:", err)
		reportError(resultOut, root, os.Args[1:], err)
		os.Exit(exitCodeOf(err))
	}
	os.Exit(exitOK)
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "signet",
		Short: "Keyless signing and provenance for CI",
		Long: `signet signs artifacts, container images and SBOMs with short-lived
certificates bound to your CI identity, records them in a transparency log,
and verifies everything offline. It speaks Sigstore's formats, so cosign,
sigstore-go and sigstore-js interoperate with it.

Run your own private Sigstore with 'signet server'.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	addTimeout(root)
	addOutputFile(root, root.PersistentPreRunE)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w\nRun '%s --help' for usage", err, c.CommandPath())}
	})
	root.AddCommand(newServerCmd(), newBenchCmd(), newVersionCmd(), newGitHubActionCmd(),
		newSignBlobCmd(), newAttestBlobCmd(), newVerifyBlobCmd(), newVerifyBlobAttestationCmd(),
		newTrustCmd(), newTUFCmd(), newCACmd(), newLogCmd(), newQuickstartCmd(),
		newImageSignCmd(), newImageAttestCmd(), newImageVerifyCmd(), newImageVerifyAttestationCmd(), newImageTreeCmd(), newImageCopyCmd(), newBuildpackCmd())
	markArgErrors(root)
	documentExitCodes(root)
	return root
}

// markArgErrors makes wrong positional arguments and unknown subcommands
// usage errors (exit 2), like bad flags, so scripts can tell a mistyped
// command from a failed operation.
func markArgErrors(c *cobra.Command) {
	for _, sub := range c.Commands() {
		markArgErrors(sub)
	}
	if c.HasSubCommands() && c.Args == nil && c.Run == nil && c.RunE == nil {
		// A command group: any argument is a subcommand that does not exist.
		c.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown command %q for %q%s", args[0], cmd.CommandPath(), didYouMean(cmd, args[0]))
			}
			return nil
		}
		c.RunE = func(cmd *cobra.Command, args []string) error {
			_ = cmd.Help()
			return usageError{fmt.Errorf("%s needs a subcommand; run '%s --help'", cmd.CommandPath(), cmd.CommandPath())}
		}
	}
	if orig := c.Args; orig != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := orig(cmd, args); err != nil {
				var ue usageError
				if errors.As(err, &ue) {
					return err // already says how to get help
				}
				if cmd.HasSubCommands() && len(args) > 0 {
					// cobra.NoArgs on a command with subcommands: the
					// argument is most likely a mistyped one.
					return usageError{fmt.Errorf("%w%s\nRun '%s --help' for usage", err, didYouMean(cmd, args[0]), cmd.CommandPath())}
				}
				return usageError{fmt.Errorf("%w\nRun '%s --help' for usage", err, cmd.CommandPath())}
			}
			return nil
		}
	}
}

// didYouMean names the subcommands of cmd close to a mistyped one, as
// cobra's own unknown-command error does: within
// SuggestionsMinimumDistance edits, a prefix of one, or listed in its
// SuggestFor. Empty when none is close.
func didYouMean(cmd *cobra.Command, typed string) string {
	if cmd.DisableSuggestions {
		return ""
	}
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's default, which SuggestionsFor does not apply
	}
	s := cmd.SuggestionsFor(typed)
	if len(s) == 0 {
		return ""
	}
	return "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t") + "\n"
}
