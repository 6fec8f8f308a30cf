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
