// Command streamscore is the one binary of streamscore: it runs scoring
// pipelines over Kinesis streams, manages the local AWS stack for
// development, validates configurations and, with later subcommands, serves
// and benchmarks models and generates load. It is thin on purpose: every
// subcommand parses flags and calls a package that does the work.
package main

import (
	"context"
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
		os.Exit(1)
	}
}
