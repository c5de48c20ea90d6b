package main

import (
	"context"
	"testing"
	"time"
)

// contextWithTimeout returns a context that ends after d or when the test
// ends, whichever comes first.
func contextWithTimeout(t testing.TB, d time.Duration) (context.Context, context.CancelFunc) {
	t.Helper()
	return context.WithTimeout(t.Context(), d)
}
