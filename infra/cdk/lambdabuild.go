package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// LoginPackage is the login Lambda's main package in the repository.
const LoginPackage = "./lambda/bootstrap"

// BuildLogin builds the login Lambda's bootstrap from repoRoot with the Go
// toolchain, for Linux on arch ("arm64" or "x86_64"), into a new directory
// under tmp, and returns that directory. It is the build lambda/ documents
// (CGO_ENABLED=0 GOOS=linux go build -tags lambda.norpc -trimpath), with
// GOARCH set to the function's architecture and VCS stamping off so the
// same sources give the same bytes (and the same asset hash). No Docker.
func BuildLogin(ctx context.Context, repoRoot, pkg, arch, tmp string) (string, error) {
	goarch := map[string]string{"arm64": "arm64", "x86_64": "amd64"}[arch]
	if goarch == "" {
		return "", fmt.Errorf("login Lambda: architecture %q: want arm64 or x86_64", arch)
	}
	out, err := os.MkdirTemp(tmp, "login-lambda-")
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "lambda.norpc", "-trimpath", "-buildvcs=false",
		"-o", filepath.Join(out, "bootstrap"), pkg)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(out)
		return "", fmt.Errorf("login Lambda: go build %s in %s: %w\n%s\n(give a built one with -c loginLambdaCode=DIR, or leave the Lambda out with -c loginLambda=false)",
			pkg, repoRoot, err, strings.TrimSpace(string(b)))
	}
	return out, nil
}
