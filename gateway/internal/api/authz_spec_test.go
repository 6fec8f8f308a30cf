package api_test

import (
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/gateway/internal/api"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
)

// clientMethods is the whole of what the gateway token (a client) may call,
// written out here independently of the table: a row opened to clients
// (say Migrate or RotateKey) fails this test until someone decides, in this
// list too, that clients may call it. The matrix test (TestClientPortMatrix)
// then checks every method x caller over real mTLS against the table.
var clientMethods = []string{
	gatewayv1.Gateway_Audit_FullMethodName,
	gatewayv1.Gateway_GetConfig_FullMethodName,
	gatewayv1.Gateway_ListSecretFiles_FullMethodName,
	gatewayv1.Gateway_ListSessions_FullMethodName,
	gatewayv1.Gateway_Send_FullMethodName,
	gatewayv1.Gateway_Status_FullMethodName,
	gatewayv1.Gateway_ValidateConfig_FullMethodName,
}

func TestClientMethodsAreExactlyThese(t *testing.T) {
	tbl := api.Authz()
	var got []string
	for m := range tbl {
		if tbl.Allowed(m, auth.RoleClient) {
			got = append(got, m)
		}
	}
	sort.Strings(got)
	want := append([]string(nil), clientMethods...)
	sort.Strings(want)
	require.Equal(t, want, got, "methods open to the gateway token changed: every state change and secret stays owner only")
	// The key and secret-file methods are owner only as well.
	for _, m := range []string{gatewayv1.Gateway_ExportKey_FullMethodName, gatewayv1.Gateway_ImportKey_FullMethodName,
		gatewayv1.Gateway_PutSecretFile_FullMethodName, gatewayv1.Gateway_Migrate_FullMethodName, gatewayv1.Gateway_RotateKey_FullMethodName} {
		require.Equal(t, []string{auth.RoleOwner}, tbl[m], m)
	}
}
