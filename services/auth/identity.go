package auth

// Peer identities, taken from the CommonName of a verified client certificate.
const (
	IDGateway  = "gateway"
	IDSecretsd = "secretsd"
	IDPairingd = "pairingd"
	IDSandboxd = "sandboxd"
	// IDCLI is the owner's client certificate identity (the CLI holding
	// pki/cli.pem and its identity-bound cli.token).
	IDCLI = "cli"
)

// Roles at the gateway's client port (Caller.ID there). Internal ports use
// the certificate identities above instead.
const (
	// RoleOwner is the verified cli certificate together with its own
	// cli.token (checked against pki/digests.json). It never depends on the
	// shared gateway token, so rotating that token cannot lock the owner out.
	RoleOwner = "owner"
	// RoleClient holds the gateway token (with or without any certificate):
	// apps, chat UIs, a CLI without the owner's bundle.
	RoleClient = "client"
)

// Roles lists the client-port roles in the order the role table shows them.
func Roles() []string { return []string{RoleOwner, RoleClient} }

// Services returns the identities that run as services and get a leaf cert.
func Services() []string { return []string{IDGateway, IDSecretsd, IDPairingd, IDSandboxd} }

// OnBehalfOfHeader carries, from the gateway's admin proxies to an internal
// service, the identity of the client the gateway forwards for. Services
// honour it only when the verified caller is the gateway, so per-caller
// limits (wrong pairing codes) apply to the real client.
const OnBehalfOfHeader = "x-moltbot-on-behalf-of"
