package api

import (
	"github.com/moltbot/moltbot-secure/gateway/internal/configstore"
	"github.com/moltbot/moltbot-secure/gateway/internal/pipeline"
	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
	"github.com/moltbot/moltbot-secure/services/seclog"
)

// Each capability owns one of these dependency structs and the handlers in
// its own file, so they can land independently.

// SecretsDeps: config ownership (GetConfig, SetConfig, ValidateConfig,
// Migrate, Rollback, RotateKey, RetireKey). Filled in by the secrets wiring.
type SecretsDeps struct {
	// Config owns moltbot.json; nil answers FailedPrecondition.
	Config *configstore.Store
	// Log records the decisions taken in these handlers (key export and
	// import, secret files; config decisions are the store's); nil: none.
	Log seclog.Recorder
	// Files reaches secretsd's secret-files volume; nil answers
	// FailedPrecondition.
	Files SecretFiles
}

// MessagingDeps: channels, the DM/group policy and the local channel's Send.
// Nil fields answer Unavailable (Send, ListSessions) or report nothing.
type MessagingDeps struct {
	// Pipeline is the current runtime's pipeline (a reload swaps it): it
	// runs local-channel messages and lists sessions and channels.
	Pipeline func() *pipeline.Pipeline
	// Pairing reads pairingd's pending queue for Status (nil: not reported).
	Pairing pairingv1.PairingClient
}

// OpsDeps is in ops.go.
