package doctor

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
)

// freshStack is what a fresh stack's gateway reports (Status --all and
// ValidateConfig of the default config).
func freshStack(now time.Time) *stackState {
	return &stackState{
		Status: &gatewayv1.StatusResponse{
			Services: []*gatewayv1.ServiceStatus{
				{Name: "gateway", Up: true}, {Name: "secretsd", Up: true}, {Name: "pairingd", Up: true}, {Name: "sandboxd", Up: true},
			},
			AuthMode:      "token",
			TokenStrength: "ok: 43 characters, 35 distinct (rule: >= 32 and >= 20)",
			Certs:         []*gatewayv1.CertStatus{{Name: "gateway", NotAfter: timestamppb.New(now.Add(365 * 24 * time.Hour))}},
			Keys:          []*gatewayv1.KeyStatus{{Kid: "k1", Primary: true}},
			Sandbox:       &gatewayv1.SandboxStatus{DockerReachable: true, ImagePresent: true, Image: "moltbot-sandbox:latest", Mode: "non-main"},
			Pairing:       &gatewayv1.PairingStatus{},
			Channels:      []*gatewayv1.ChannelStatus{{Name: "local", Connected: true}},
			ConfigPath:    "/state/moltbot.json",
		},
		Validate: &gatewayv1.ValidateConfigResponse{Valid: true},
	}
}

func TestStackChecks(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		mod        func(*stackState)
		check, bad string // the check that does not pass and its status
	}{
		{"fresh stack", func(*stackState) {}, "", ""},
		{"service down", func(s *stackState) { s.Status.Services[2].Up = false }, "services", "fail"},
		{"weak token", func(s *stackState) { s.Status.TokenStrength = "weak: 15 characters, 12 distinct" }, "gateway token", "fail"},
		{"invalid config", func(s *stackState) {
			s.Validate = &gatewayv1.ValidateConfigResponse{Problems: []*gatewayv1.Problem{{Path: "channels.telegram.dmPolicy", Message: "open is removed", Severity: "error"}}}
		}, "stack config", "fail"},
		{"config warning", func(s *stackState) {
			s.Validate = &gatewayv1.ValidateConfigResponse{Valid: true, Problems: []*gatewayv1.Problem{{Path: "gateway.controlUi.allowInsecureAuth", Message: "deprecated", Severity: "warning"}}}
		}, "stack config", "warn"},
		{"config not checked", func(s *stackState) { s.Validate, s.ValidateErr = nil, errors.New("owner only") }, "stack config", "warn"},
		{"no primary key", func(s *stackState) { s.Status.Keys = nil }, "secrets key", "fail"},
		{"cert expiring", func(s *stackState) { s.Status.Certs[0].NotAfter = timestamppb.New(now.Add(24 * time.Hour)) }, "stack cert", "warn"},
		{"cert expired", func(s *stackState) { s.Status.Certs[0].NotAfter = timestamppb.New(now.Add(-time.Hour)) }, "stack cert", "fail"},
		{"docker unreachable", func(s *stackState) { s.Status.Sandbox.DockerReachable = false }, "sandbox", "fail"},
		{"image missing", func(s *stackState) { s.Status.Sandbox.ImagePresent = false }, "sandbox", "fail"},
		{"sandbox off", func(s *stackState) { s.Status.Sandbox.Mode = "off" }, "sandbox", "warn"},
		{"channel error", func(s *stackState) {
			s.Status.Channels = append(s.Status.Channels, &gatewayv1.ChannelStatus{Name: "telegram", Error: "401 Unauthorized"})
		}, "channel telegram", "warn"},
		{"pairing queue full", func(s *stackState) { s.Status.Pairing.FullChannels = []string{"telegram"} }, "pairing", "warn"},
		{"gateway warning", func(s *stackState) { s.Status.Warnings = []string{"secretsd key status: unavailable"} }, "stack", "warn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := freshStack(now)
			tc.mod(s)
			checks := stackChecks(s, now)
			found := false
			for _, c := range checks {
				if c.Name == tc.check && c.Status == tc.bad {
					found = true
					require.NotEmpty(t, c.Fix, "a check that did not pass says what to do")
					continue
				}
				require.Equal(t, "ok", c.Status, "%+v", c)
			}
			require.Equal(t, tc.check != "", found, "%+v", checks)
		})
	}
}
