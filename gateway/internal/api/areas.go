package api

import (
	"github.com/moltbot/moltbot-secure/gateway/internal/configstore"
)

import (
	"github.com/moltbot/moltbot-secure/gateway/internal/pipeline"
	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
)

// Each capability owns one of these dependency structs and the handlers in
// its own file, so they can land independently.

// SecretsDeps: config ownership (GetConfig, SetConfig, ValidateConfig,
// Migrate, Rollback, RotateKey). Filled in by the secrets wiring.
type SecretsDeps struct {
	// Config owns moltbot.json; nil answers FailedPrecondition.
	Config *configstore.Store
}

// MessagingDeps: channels, the DM/group policy and the local channel's Send.
// Nil fields answer Unavailable (Send, ListSessions) or report nothing.
type MessagingDeps struct {
	// Pipeline runs local-channel messages and lists sessions and channels.
	Pipeline *pipeline.Pipeline
	// Pairing reads pairingd's pending queue for Status (nil: not reported).
	Pairing pairingv1.PairingClient
}

// OpsDeps is in ops.go.
