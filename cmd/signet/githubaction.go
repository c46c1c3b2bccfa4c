package main

import (
	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/action"
)

// newGitHubActionCmd is the entry point of the signet GitHub Action
// (action.yml): it reads the step's INPUT_* variables and the runner's
// GITHUB_* environment. Hidden: it is not meant to be typed.
func newGitHubActionCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "github-action",
		Short:  "Run as the signet GitHub Action (used by action.yml)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The action has already reported the failure as an ::error
			// annotation; the error still sets the exit status.
			return action.Run(cmd.Context(), action.Options{Stdout: cmd.OutOrStdout()})
		},
	}
}
