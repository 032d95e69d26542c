//go:build !linux

package main

import (
	"context"
	"errors"
	"io"
	"runtime"
)

const defaultRoot = "/run/sandboxkit-runtime"

func (g *globals) command(context.Context, string, []string, io.Writer) (int, error) {
	return 1, errors.New("runs on Linux only, not " + runtime.GOOS)
}
