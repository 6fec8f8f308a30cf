//go:build integration

// Package integration runs the foundation's security promises against the
// real images (make images) started by services/testharness: mTLS on every
// port, tokens on every call, per-method authorization, the failed-auth
// lockout, and the start-up refusals.
package integration

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/moltbot/moltbot-secure/services/testharness"
)

// shared is the one stack the read-only tests use. Tests on it stay well
// under the limiter's 10 failed authentications per minute per service from
// the host address; anything that needs more starts its own stack.
var shared struct {
	once  sync.Once
	stack *testharness.Stack
	err   error
	took  time.Duration
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.stack != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := shared.stack.Close(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "close shared stack:", err)
			code = 1
		}
		cancel()
	}
	os.Exit(code)
}

// sharedStack starts the shared stack on first use and dumps its logs if t fails.
func sharedStack(t *testing.T) *testharness.Stack {
	t.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		start := time.Now()
		shared.stack, shared.err = testharness.New(ctx, testharness.Options{})
		shared.took = time.Since(start)
	})
	if shared.err != nil {
		t.Fatalf("start shared stack: %v", shared.err)
	}
	shared.stack.LogOnFailure(t)
	return shared.stack
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// imageTag is the tag `make images IMAGE_TAG=...` built (default latest).
func imageTag() string {
	if t := os.Getenv("MOLTBOT_IMAGE_TAG"); t != "" {
		return t
	}
	return "latest"
}

// testonlyTag is the tag of the auth-disabled gateway (make images-testonly).
func testonlyTag() string {
	if t := imageTag(); t != "latest" {
		return "insecure-testonly-" + t
	}
	return "insecure-testonly"
}

var fakeOpenAIImage = fakeOpenAIImageName + ":" + imageTag()
