package api

import (
	"fmt"
	"sort"
	"strings"

	"google.golang.org/grpc"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
)

// Rule is one row of the client port's method x role table: who may call
// the method, and why (the reason is published in docs/SECURITY.md).
type Rule struct {
	Roles []string
	Why   string
}

var (
	ownerOnly   = []string{auth.RoleOwner}
	ownerClient = []string{auth.RoleOwner, auth.RoleClient}
	nobody      = []string{}
)

// clientPort is THE table for everything served on the gateway's client
// port: the Gateway service and the pairing and sandbox proxies. Every state
// change is owner only; a client (the gateway token) may send messages and
// read non-secret views. A method without a row is denied (auth.Table), and
// TestEveryMethodHasARow keeps every served method listed.
var clientPort = map[string]Rule{
	// Gateway service.
	gatewayv1.Gateway_Status_FullMethodName:          {ownerClient, "health view: versions, up/down, token strength (never the token), key ids and fingerprints"},
	gatewayv1.Gateway_GetConfig_FullMethodName:       {ownerClient, "secrets stay `<encrypted>`; the reveal field is refused (RevealConfig)"},
	gatewayv1.Gateway_RevealConfig_FullMethodName:    {ownerOnly, "decrypts secrets"},
	gatewayv1.Gateway_SetConfig_FullMethodName:       {ownerOnly, "state change: config, including security.acknowledged"},
	gatewayv1.Gateway_ValidateConfig_FullMethodName:  {ownerClient, "read only: problems of the file or of a given text; writes nothing"},
	gatewayv1.Gateway_Audit_FullMethodName:           {ownerClient, "read only: findings and score; the fix field is refused (AuditFix)"},
	gatewayv1.Gateway_AuditFix_FullMethodName:        {ownerOnly, "state change: rewrites config and permissions"},
	gatewayv1.Gateway_Migrate_FullMethodName:         {ownerOnly, "state change: rewrites the config, encrypts secrets"},
	gatewayv1.Gateway_Reload_FullMethodName:          {ownerOnly, "state change: applies a new config and token"},
	gatewayv1.Gateway_Rollback_FullMethodName:        {ownerOnly, "state change: restores a backup"},
	gatewayv1.Gateway_ListBackups_FullMethodName:     {ownerOnly, "the owner's backup history: times, writers, sizes (never contents)"},
	gatewayv1.Gateway_MigrateFrom_FullMethodName:     {ownerOnly, "state change: imports an upstream state dir and encrypts its secrets"},
	gatewayv1.Gateway_RotateKey_FullMethodName:       {ownerOnly, "state change: secrets key rotation and rewrap"},
	gatewayv1.Gateway_RetireKey_FullMethodName:       {ownerOnly, "state change: drops a secrets key (refused while anything is sealed under it)"},
	gatewayv1.Gateway_RotateCerts_FullMethodName:     {ownerOnly, "state change: reissues certificates"},
	gatewayv1.Gateway_ExportKey_FullMethodName:       {ownerOnly, "the keyring, sealed under the owner's passphrase"},
	gatewayv1.Gateway_ImportKey_FullMethodName:       {ownerOnly, "state change: replaces the keyring of an unused stack"},
	gatewayv1.Gateway_PutSecretFile_FullMethodName:   {ownerOnly, "state change: writes a file ${file:NAME} references resolve to"},
	gatewayv1.Gateway_ListSecretFiles_FullMethodName: {ownerClient, "non-secret view: names and sizes, never contents"},
	gatewayv1.Gateway_SecurityLog_FullMethodName:     {ownerOnly, "the owner's audit trail: callers, addresses, decisions"},
	gatewayv1.Gateway_Send_FullMethodName:            {ownerClient, "what clients are for: a message on the local channel, judged by its DM policy like any sender's"},
	gatewayv1.Gateway_ListSessions_FullMethodName:    {ownerClient, "non-secret view: session keys and activity"},
	gatewayv1.Gateway_ListDevices_FullMethodName:     {ownerOnly, "the Control UI's devices: who may administer the gateway from a browser"},
	gatewayv1.Gateway_ApproveDevice_FullMethodName:   {ownerOnly, "state change: admits a browser device (as owner by default)"},
	gatewayv1.Gateway_RejectDevice_FullMethodName:    {ownerOnly, "state change: device decision"},
	gatewayv1.Gateway_RevokeDevice_FullMethodName:    {ownerOnly, "state change: removes a device and ends its sessions"},

	// Pairing proxy (forwarded to pairingd as the gateway).
	pairingv1.Pairing_List_FullMethodName:        {ownerOnly, "pending senders and their codes: the owner's decision queue"},
	pairingv1.Pairing_ListAllowed_FullMethodName: {ownerOnly, "allowlisted sender ids (personal data)"},
	pairingv1.Pairing_Watch_FullMethodName:       {ownerOnly, "pending senders and their codes, streamed"},
	pairingv1.Pairing_Approve_FullMethodName:     {ownerOnly, "state change: admits a sender"},
	pairingv1.Pairing_Reject_FullMethodName:      {ownerOnly, "state change: pairing decision"},
	pairingv1.Pairing_Revoke_FullMethodName:      {ownerOnly, "state change: removes a sender"},
	pairingv1.Pairing_Request_FullMethodName:     {nobody, "not exposed: only the gateway's message pipeline asks pairingd"},
	pairingv1.Pairing_IsAllowed_FullMethodName:   {nobody, "not exposed: only the gateway's message pipeline asks pairingd"},
	pairingv1.Pairing_Import_FullMethodName:      {nobody, "not exposed: migration imports run inside the gateway"},

	// Sandbox proxy (forwarded to sandboxd as the gateway).
	sandboxv1.Sandbox_List_FullMethodName:     {ownerOnly, "session keys (sender ids) and containers"},
	sandboxv1.Sandbox_Explain_FullMethodName:  {ownerOnly, "the effective sandbox policy and mounts"},
	sandboxv1.Sandbox_Info_FullMethodName:     {ownerOnly, "host Docker details"},
	sandboxv1.Sandbox_Recreate_FullMethodName: {ownerOnly, "state change: recreates containers"},
	sandboxv1.Sandbox_Prune_FullMethodName:    {ownerOnly, "state change: removes containers"},
	sandboxv1.Sandbox_Ensure_FullMethodName:   {nobody, "not exposed: commands run only through the agent"},
	sandboxv1.Sandbox_Exec_FullMethodName:     {nobody, "not exposed: commands run only through the agent"},
}

// ClientPortServices are the services served on the client port; the
// every-method-has-a-row test and the generated doc walk them.
func ClientPortServices() []*grpc.ServiceDesc {
	return []*grpc.ServiceDesc{&gatewayv1.Gateway_ServiceDesc, &pairingv1.Pairing_ServiceDesc, &sandboxv1.Sandbox_ServiceDesc}
}

// Authz is the client port's authorization table (default deny).
func Authz() auth.Table {
	t := make(auth.Table, len(clientPort))
	for m, r := range clientPort {
		t[m] = append([]string(nil), r.Roles...)
	}
	return t
}

// RoleTableMarkdown renders the table for docs/SECURITY.md, sorted by
// method so the output is stable.
func RoleTableMarkdown() string {
	methods := make([]string, 0, len(clientPort))
	for m := range clientPort {
		methods = append(methods, m)
	}
	sort.Strings(methods)
	var b strings.Builder
	b.WriteString("| method | " + strings.Join(auth.Roles(), " | ") + " | why |\n")
	b.WriteString("|---|" + strings.Repeat("---|", len(auth.Roles())) + "---|\n")
	for _, m := range methods {
		r := clientPort[m]
		fmt.Fprintf(&b, "| `%s` |", strings.TrimPrefix(m, "/"))
		for _, role := range auth.Roles() {
			mark := "no"
			for _, have := range r.Roles {
				if have == role {
					mark = "yes"
				}
			}
			fmt.Fprintf(&b, " %s |", mark)
		}
		fmt.Fprintf(&b, " %s |\n", r.Why)
	}
	return b.String()
}

// notOverHTTP are the methods the Control UI's HTTP adapter never serves,
// whatever the role: they carry secret material to or from the caller, and
// nothing secret reaches a web page. The role table above still applies
// first; this only narrows it.
var notOverHTTP = map[string]string{
	gatewayv1.Gateway_RevealConfig_FullMethodName:  "decrypted secrets",
	gatewayv1.Gateway_ExportKey_FullMethodName:     "the sealed keyring and its passphrase",
	gatewayv1.Gateway_ImportKey_FullMethodName:     "a keyring and its passphrase",
	gatewayv1.Gateway_PutSecretFile_FullMethodName: "secret file contents",
	gatewayv1.Gateway_MigrateFrom_FullMethodName:   "an upstream state dir with plain-text secrets",
}

// NotOverHTTP returns why method is not served to the Control UI, "" when it is.
func NotOverHTTP(method string) string { return notOverHTTP[method] }
