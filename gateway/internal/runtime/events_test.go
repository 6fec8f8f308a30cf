package runtime

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/gateway/internal/channels"
	"github.com/moltbot/moltbot-secure/gateway/internal/pipeline"
	"github.com/moltbot/moltbot-secure/gateway/internal/policy"
	"github.com/moltbot/moltbot-secure/services/seclog"
)

type notes []seclog.Event

func (n *notes) Note(ev seclog.Event) { *n = append(*n, ev) }

func TestBlockedRecorder(t *testing.T) {
	in := channels.Inbound{Channel: "telegram", SenderID: "42", Text: "the message text"}
	cases := []struct {
		name string
		res  pipeline.Result
		want []seclog.Event
	}{
		{"blocked", pipeline.Result{Decision: policy.ReasonDMNotAllowed},
			[]seclog.Event{{Kind: "message.blocked", Actor: "telegram:42", Target: "telegram", Fields: map[string]string{"decision": policy.ReasonDMNotAllowed}}}},
		{"reached the agent", pipeline.Result{Decision: policy.ReasonDMConfigAllow, ReachedAgent: true}, nil},
		{"no decision (bad input)", pipeline.Result{}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got notes
			BlockedRecorder(&got)(context.Background(), in, tc.res)
			require.Equal(t, tc.want, []seclog.Event(got))
		})
	}
	BlockedRecorder(nil)(context.Background(), in, pipeline.Result{Decision: "x"}) // no log: nothing, no panic
}
