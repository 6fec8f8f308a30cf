package api

// Each capability owns one of these dependency structs and the handlers in
// its own file, so they can land independently.

// SecretsDeps: config ownership (GetConfig, SetConfig, ValidateConfig,
// Migrate, Rollback, RotateKey). Filled in by the secrets wiring.
type SecretsDeps struct{}

// MessagingDeps: channels, the DM/group policy and the local channel's Send.
type MessagingDeps struct{}

// OpsDeps is in ops.go.
