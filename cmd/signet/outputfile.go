package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// resultOut is where results go: stdout, or --output-file.
var resultOut io.Writer = os.Stdout

// addOutputFile gives every command cosign's --output-file: the result that
// would go to stdout goes to FILE instead (progress stays on stderr).
func addOutputFile(root *cobra.Command, pre func(*cobra.Command, []string) error) {
	var path string
	root.PersistentFlags().StringVar(&path, "output-file", "", "write the result to FILE instead of stdout (as cosign's --output-file)")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if path != "" {
			f, err := os.Create(path)
			if err != nil {
				return usageError{fmt.Errorf("--output-file: %v", err)}
			}
			cmd.SetOut(f)
			resultOut = f
		}
		if pre != nil {
			return pre(cmd, args)
		}
		return nil
	}
}
