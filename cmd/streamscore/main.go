// Command streamscore is the one binary of streamscore: it runs scoring
// pipelines over Kinesis streams, manages the local AWS stack for
// development, validates configurations and, with later subcommands, serves
// and benchmarks models and generates load. It is thin on purpose: every
// subcommand parses flags and calls a package that does the work.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// The first SIGINT/SIGTERM cancels the context so subcommands shut down
	// gracefully; a second one kills the process the default way.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "streamscore:", err)
		os.Exit(exitCode(err))
	}
}

// Exit statuses of streamscore. Every error exits with exitError; only
// `monitor check` and `monitor quality` with --fail-on-violation exit with
// exitViolations, so a CI gate can tell "the data drifted" or "the model
// got worse" from "the check could not run".
const (
	exitError      = 1
	exitViolations = 2
)

// exitCode is the process exit status for what a command returned.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if e, ok := errors.AsType[interface {
		error
		ExitCode() int
	}](err); ok {
		return e.ExitCode()
	}
	return exitError
}
