package api

import (
	"testing"

	"github.com/stretchr/testify/require"

	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
)

func TestAuthzCoversEveryMethod(t *testing.T) {
	table := Authz()
	require.Len(t, table, len(sandboxv1.Sandbox_ServiceDesc.Methods)+len(sandboxv1.Sandbox_ServiceDesc.Streams))
	for _, m := range sandboxv1.Sandbox_ServiceDesc.Methods {
		full := "/" + sandboxv1.Sandbox_ServiceDesc.ServiceName + "/" + m.MethodName
		ids, ok := table[full]
		require.True(t, ok, "no authz row for %s", full)
		require.Contains(t, ids, auth.IDGateway)
	}
	for _, m := range []string{sandboxv1.Sandbox_Ensure_FullMethodName, sandboxv1.Sandbox_Exec_FullMethodName} {
		require.NotContains(t, table[m], auth.IDCLI, "the CLI must not run commands")
	}
	for _, m := range []string{sandboxv1.Sandbox_List_FullMethodName, sandboxv1.Sandbox_Explain_FullMethodName,
		sandboxv1.Sandbox_Recreate_FullMethodName, sandboxv1.Sandbox_Prune_FullMethodName, sandboxv1.Sandbox_Info_FullMethodName} {
		require.Contains(t, table[m], auth.IDCLI)
	}
}
