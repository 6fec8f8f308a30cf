package app

import "context"

// wireMessaging starts the channels and the DM/group policy pipeline.
func wireMessaging(_ context.Context, w *Wiring) error { return nil }
