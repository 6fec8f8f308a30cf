//go:build integration

package integration

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/testharness"
)

// vmHWM is a process's peak resident memory in KiB (/proc/PID/status).
func vmHWM(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	require.NoError(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			n, err := strconv.Atoi(f[1])
			require.NoError(t, err)
			return n
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// TestSetConfigInputBounds: hostile values at SetConfig are refused with
// InvalidArgument naming the limit, fast and without a memory spike, the
// file is unchanged, and the gateway keeps serving. (Once, a 300 KB value
// 50,000 deep took a gateway past 3 GB.) Invalid UTF-8 cannot cross the
// wire in a proto string; CheckText's unit tests cover it for files.
func TestSetConfigInputBounds(t *testing.T) {
	ls := testharness.StartLocal(t, testharness.LocalOptions{Services: []string{testharness.Secretsd, testharness.Gateway}})
	gw := ls.AdminGateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := gw.SetConfig(ctx, &gatewayv1.SetConfigRequest{Path: "agents.list", Value: `[{"id": "main"}]`})
	require.NoError(t, err)
	before, err := os.ReadFile(ls.ConfigPath())
	require.NoError(t, err)
	hwm0 := vmHWM(t, ls.Pid(testharness.Gateway))

	deep := strings.Repeat(`{"a":`, 50000) + "1" + strings.Repeat("}", 50000)
	tests := []struct {
		name, path, value string
		want              string
	}{
		{"50,000 deep", "agents.list", deep, "config set agents.list: value nests 50000 deep; the limit is 62"},
		{"50,000 deep arrays", "tools", strings.Repeat("[", 50000) + strings.Repeat("]", 50000), "value nests 50000 deep"},
		{"duplicate keys", "tools", `{"exec": 1, "exec": 2}`, `key "exec" appears twice`},
		{"over 1 MiB", "agents.list", `["` + strings.Repeat("a", 1<<20) + `"]`, "the limit is 1 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := gw.SetConfig(ctx, &gatewayv1.SetConfigRequest{Path: tt.path, Value: tt.value})
			elapsed := time.Since(start)
			require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
			require.Contains(t, status.Convert(err).Message(), tt.want)
			require.Less(t, elapsed, 2*time.Second, "refused before any expensive parse")
			after, err := os.ReadFile(ls.ConfigPath())
			require.NoError(t, err)
			require.Equal(t, before, after, "nothing written")
			st, err := gw.Status(ctx, &gatewayv1.StatusRequest{})
			require.NoError(t, err, "the gateway keeps serving")
			require.NotNil(t, st)
		})
	}
	// ValidateConfig of a whole text: the same bounds, as a problem.
	vr, err := gw.ValidateConfig(ctx, &gatewayv1.ValidateConfigRequest{Config: `{"tools": ` + deep + `}`})
	require.NoError(t, err)
	require.False(t, vr.GetValid())
	require.Len(t, vr.GetProblems(), 1)
	require.Equal(t, "file nests 50001 deep; the limit is 64", vr.GetProblems()[0].GetMessage())
	require.Equal(t, "flatten the structure", vr.GetProblems()[0].GetFix())

	grew := vmHWM(t, ls.Pid(testharness.Gateway)) - hwm0
	require.Less(t, grew, 256*1024, "peak RSS grew by %d KiB", grew)
}
