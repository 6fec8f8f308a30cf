package app

import "context"

// wireSandbox sets up the agent's executor and the sandbox admin proxy.
func wireSandbox(_ context.Context, w *Wiring) error { return nil }
