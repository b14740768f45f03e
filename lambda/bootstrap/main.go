// Command bootstrap is the login-event Lambda function for the provided.al2023
// runtime (package lambda has what it does; docs/lambda.md how to build and
// deploy it):
//
//	CGO_ENABLED=0 GOOS=linux go build -tags lambda.norpc -trimpath -o bootstrap ./lambda/bootstrap
package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	awslambda "github.com/aws/aws-lambda-go/lambda"

	"github.com/streamscore/streamscore/lambda"
)

func main() {
	// JSON lines on stderr; stdout carries the metrics (EMF) lines.
	var level slog.LevelVar
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: &level}))
	slog.SetDefault(log)
	// Lambda gives the init phase 10 s; the model download fits in it.
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Second)
	h, err := lambda.Open(ctx, os.Getenv, log)
	cancel()
	if err != nil {
		// Exiting makes Lambda report Runtime.ExitError and start a fresh
		// environment on the next invocation, so a transient S3 failure
		// heals; this line says which variable or file is wrong.
		log.Error("cold start failed", "err", err)
		os.Exit(1)
	}
	level.Set(h.Config().LogLevel)
	awslambda.Start(h)
}
