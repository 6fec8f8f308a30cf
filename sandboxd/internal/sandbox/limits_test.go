package sandbox

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// sandboxd and the config validator apply one rule: what config.Check*
// refuses, Policy.Validate refuses, and the reverse.
func TestPolicyLimitsAreTheConfigModels(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Policy)
		check error
	}{
		{"memory small", func(p *Policy) { p.MemoryBytes = 1 << 20 }, config.CheckMemoryBytes(1 << 20)},
		{"memory ok", func(p *Policy) { p.MemoryBytes = 256 << 20 }, config.CheckMemoryBytes(256 << 20)},
		{"cpus", func(p *Policy) { p.CPUs = 65 }, config.CheckCPUs(65)},
		{"pids", func(p *Policy) { p.PidsLimit = 8 }, config.CheckPidsLimit(8)},
		{"network", func(p *Policy) { p.Network = "host" }, config.CheckNetworkName("host")},
		{"env", func(p *Policy) { p.Env = map[string]string{"A B": "x"} }, config.CheckSandboxEnv(map[string]string{"A B": "x"})},
		{"bind", func(p *Policy) { p.Binds = []string{"/run/x:/x"} }, func() error { _, err := config.NormalizeBind("/run/x:/x"); return err }()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultPolicy()
			tc.edit(&p)
			err := p.Validate()
			if tc.check == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, errs.ErrInvalidArgument)
			require.ErrorContains(t, err, tc.check.Error())
		})
	}
}
