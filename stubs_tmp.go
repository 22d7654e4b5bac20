package main

import (
	"context"
	"io"
)

func runJobspec(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	return 1
}
