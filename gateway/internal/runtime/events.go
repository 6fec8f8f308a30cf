package runtime

import (
	"context"

	"github.com/moltbot/moltbot-secure/gateway/internal/channels"
	"github.com/moltbot/moltbot-secure/gateway/internal/pipeline"
	"github.com/moltbot/moltbot-secure/services/seclog"
)

// Noter queues a security event without waiting for the disk (seclog.Log):
// a chat message must not stall on the log.
type Noter interface{ Note(ev seclog.Event) }

// BlockedRecorder is a pipeline.Config.OnDecision that records each
// message the policy kept from the agent ("message.blocked"), with the
// sender and the decision, never the text. A nil log records nothing.
func BlockedRecorder(log Noter) func(context.Context, channels.Inbound, pipeline.Result) {
	return func(_ context.Context, in channels.Inbound, r pipeline.Result) {
		if log == nil || r.ReachedAgent || r.Decision == "" {
			return
		}
		log.Note(seclog.Event{Kind: "message.blocked", Actor: in.Channel + ":" + in.SenderID,
			Target: in.Channel, Fields: map[string]string{"decision": r.Decision}})
	}
}
