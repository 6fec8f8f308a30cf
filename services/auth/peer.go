package auth

import (
	"context"
	"net"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/moltbot/moltbot-secure/services/tlsutil"
)

// Caller is the authenticated caller of an RPC: who (from the verified
// certificate and the token) and from where.
type Caller struct {
	ID     string // identity used for authorization (a cert identity on internal ports; RoleOwner or RoleClient at the gateway's client port)
	CertID string // CommonName of the verified client cert, "" when none
	Addr   string // client IP, the rate-limit key
	// TokenGen is the generation of the gateway token the call presented;
	// streams opened with a rotated token are closed when it changes.
	TokenGen uint64
}

type callerKey struct{}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the authenticated caller, if any.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// PeerInfo extracts the client IP and the verified cert identity from the
// transport. It needs no authentication, so logging can use it too.
func PeerInfo(ctx context.Context) (addr, certID string) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", ""
	}
	if p.Addr != nil {
		addr = p.Addr.String()
		if host, _, err := net.SplitHostPort(addr); err == nil {
			addr = host
		}
	}
	switch ti := p.AuthInfo.(type) {
	case MarkedTLSInfo:
		certID = tlsutil.PeerIdentity(ti.State)
	case credentials.TLSInfo:
		certID = tlsutil.PeerIdentity(ti.State)
	}
	return addr, certID
}
