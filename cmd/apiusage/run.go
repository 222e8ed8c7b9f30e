package main

import (
	"context"
	"errors"
	"io"

	"github.com/spf13/cobra"
)

// usageError marks an error in how the command was called: exit code 1.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// exitCode maps an error to the process's exit code: 1 for a usage error,
// 2 for anything else (server or network errors).
func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 1
	}
	return 2
}

// run is the whole program. main calls it with the process's arguments,
// environment and streams; tests call it the same way, in process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	root := &cobra.Command{
		Use:   "apiusage",
		Short: "apiusage records API requests and answers the Usage API about them",
		Example: `  apiusage serve
  apiusage login --url http://127.0.0.1:8080 --client-id ID --client-secret SECRET
  apiusage ingest events.ndjson
  apiusage query org --last 7d --granularity day
  source <(apiusage completion bash)`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args[1:])
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(serveCommand(getenv, stdout, stderr))
	root.AddCommand(cliCommands(getenv, stdout, stderr)...)
	root.AddCommand(proxyCommand(getenv, stdout, stderr))
	addCompletionExamples(root)
	_, err := root.ExecuteContextC(ctx)
	if err != nil && isCobraUsageError(err) {
		return usageError{err}
	}
	return err
}

// isCobraUsageError reports whether err is cobra's own complaint about the
// command line (unknown command, wrong number of arguments).
func isCobraUsageError(err error) bool {
	var u usageError
	if errors.As(err, &u) {
		return false
	}
	msg := err.Error()
	for _, prefix := range []string{"unknown command", "unknown flag", "accepts ", "requires ", "invalid argument"} {
		if len(msg) >= len(prefix) && msg[:len(prefix)] == prefix {
			return true
		}
	}
	return false
}

// addCompletionExamples gives cobra's completion commands the examples every
// other command has.
func addCompletionExamples(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		c.Example = `  source <(apiusage completion bash)
  apiusage completion zsh > "${fpath[1]}/_apiusage"
  apiusage completion fish > ~/.config/fish/completions/apiusage.fish`
		for _, shell := range c.Commands() {
			switch shell.Name() {
			case "bash":
				shell.Example = "  source <(apiusage completion bash)\n  apiusage completion bash > /etc/bash_completion.d/apiusage"
			case "zsh":
				shell.Example = "  apiusage completion zsh > \"${fpath[1]}/_apiusage\""
			case "fish":
				shell.Example = "  apiusage completion fish > ~/.config/fish/completions/apiusage.fish"
			case "powershell":
				shell.Example = "  apiusage completion powershell | Out-String | Invoke-Expression"
			}
		}
	}
}
