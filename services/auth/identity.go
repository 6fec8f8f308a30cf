package auth

// Peer identities, taken from the CommonName of a verified client certificate.
const (
	IDGateway  = "gateway"
	IDSecretsd = "secretsd"
	IDPairingd = "pairingd"
	IDSandboxd = "sandboxd"
	// IDCLI is the admin client identity (the CLI holding the cli cert).
	IDCLI = "cli"
	// IDClient is a gateway client that presented the gateway token but no
	// client certificate (apps, a CLI without the admin cert).
	IDClient = "client"
)

// Services returns the identities that run as services and get a leaf cert.
func Services() []string { return []string{IDGateway, IDSecretsd, IDPairingd, IDSandboxd} }

// OnBehalfOfHeader carries, from the gateway's admin proxies to an internal
// service, the identity of the client the gateway forwards for. Services
// honour it only when the verified caller is the gateway, so per-caller
// limits (wrong pairing codes) apply to the real client.
const OnBehalfOfHeader = "x-moltbot-on-behalf-of"
