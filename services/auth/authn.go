package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	grpcauth "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Verifier decides who a caller is from its cert identity and bearer token.
type Verifier interface {
	// Verify returns the caller identity and token generation, or ok=false.
	Verify(certID, token string) (id string, gen uint64, ok bool)
}

// Digest is the SHA-256 of a token. Tokens are compared as digests in
// constant time, so neither content nor length leaks through timing.
type Digest [sha256.Size]byte

// DigestOf hashes a token.
func DigestOf(token string) Digest { return sha256.Sum256([]byte(token)) }

func digestEqual(a, b Digest) bool { return subtle.ConstantTimeCompare(a[:], b[:]) == 1 }

// ServiceTokens verifies internal calls: the token must be the one issued to
// the identity named in the verified client certificate, so a stolen token
// is useless without that identity's key and vice versa.
type ServiceTokens struct {
	digests map[string]Digest
}

// NewServiceTokens builds a verifier from identity -> digest.
func NewServiceTokens(d map[string]Digest) *ServiceTokens { return &ServiceTokens{digests: d} }

// Verify implements Verifier.
func (s *ServiceTokens) Verify(certID, token string) (string, uint64, bool) {
	want, ok := s.digests[certID]
	if certID == "" || !ok {
		// Still hash and compare so an unknown identity takes the same time.
		digestEqual(DigestOf(token), Digest{})
		return "", 0, false
	}
	if !digestEqual(DigestOf(token), want) {
		return "", 0, false
	}
	return certID, 0, true
}

// TokenDigestsFile is the name, under the tokens dir, of the identity ->
// SHA-256 map every service reads. Only digests: it is safe to share.
const TokenDigestsFile = "digests.json"

// LoadServiceTokens reads the digests file written by `moltbot certs init`.
func LoadServiceTokens(path string) (*ServiceTokens, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read service token digests %s: %w (run `moltbot certs init`)", path, err)
	}
	var raw map[string]string
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("parse %s: %w (re-run `moltbot certs init --force`)", path, err)
	}
	d := make(map[string]Digest, len(raw))
	for id, h := range raw {
		v, err := hex.DecodeString(h)
		if err != nil || len(v) != sha256.Size {
			return nil, fmt.Errorf("%s: digest for %q is not 64 hex characters", path, id)
		}
		d[id] = Digest(v)
	}
	return NewServiceTokens(d), nil
}

// Only returns a verifier that knows the digests of ids alone (the gateway's
// client port accepts only the owner's cli.token from digests.json).
func (s *ServiceTokens) Only(ids ...string) *ServiceTokens {
	d := make(map[string]Digest, len(ids))
	for _, id := range ids {
		if v, ok := s.digests[id]; ok {
			d[id] = v
		}
	}
	return NewServiceTokens(d)
}

// GatewayToken verifies the shared gateway token: whoever presents it is a
// client (RoleClient), whatever certificate it shows. The token can be
// swapped at run time (hot reload); each swap bumps the generation so
// streams opened before it can be closed.
type GatewayToken struct {
	mu      sync.Mutex
	current atomic.Pointer[gatewayTokenState]
	onSwap  []func(gen uint64)
	streams *streamRegistry
}

type gatewayTokenState struct {
	digest Digest
	gen    uint64
}

// NewGatewayToken returns a verifier for token. The caller has checked the
// token rule already.
func NewGatewayToken(token string) *GatewayToken {
	g := &GatewayToken{}
	g.current.Store(&gatewayTokenState{digest: DigestOf(token), gen: 1})
	return g
}

// Set replaces the token; it reports whether it changed.
func (g *GatewayToken) Set(token string) bool {
	g.mu.Lock()
	cur := g.current.Load()
	d := DigestOf(token)
	if digestEqual(cur.digest, d) {
		g.mu.Unlock()
		return false
	}
	next := &gatewayTokenState{digest: d, gen: cur.gen + 1}
	g.current.Store(next)
	hooks := append([]func(uint64){}, g.onSwap...)
	g.mu.Unlock()
	for _, h := range hooks {
		h(next.gen)
	}
	return true
}

// Generation returns the current token generation.
func (g *GatewayToken) Generation() uint64 { return g.current.Load().gen }

// OnSwap registers a hook run after each token change.
func (g *GatewayToken) OnSwap(f func(gen uint64)) {
	g.mu.Lock()
	g.onSwap = append(g.onSwap, f)
	g.mu.Unlock()
}

// Verify implements Verifier.
func (g *GatewayToken) Verify(certID, token string) (string, uint64, bool) {
	cur := g.current.Load()
	if !digestEqual(DigestOf(token), cur.digest) {
		return "", 0, false
	}
	return RoleClient, cur.gen, true
}

// ClientPort verifies callers of the gateway's client port. The owner is
// the verified cli certificate with its own identity-bound token (never the
// gateway token); anyone else with the gateway token is a client. A service
// certificate is never the owner: Owner is consulted only for IDCLI.
type ClientPort struct {
	Gateway *GatewayToken
	// Owner holds the cli.token digest (ServiceTokens.Only(IDCLI)).
	Owner *ServiceTokens
}

// NewClientPort builds the client port's verifier from the gateway token
// and the service token digests (of which only cli's is kept).
func NewClientPort(gw *GatewayToken, tokens *ServiceTokens) ClientPort {
	return ClientPort{Gateway: gw, Owner: tokens.Only(IDCLI)}
}

// Verify implements Verifier. The owner check runs first so a cli caller
// never silently becomes a client because both tokens were tried; both
// comparisons are constant time.
func (c ClientPort) Verify(certID, token string) (string, uint64, bool) {
	if certID == IDCLI && c.Owner != nil {
		if _, _, ok := c.Owner.Verify(IDCLI, token); ok {
			// Generation 0: owner streams are not tied to the gateway token.
			return RoleOwner, 0, true
		}
	}
	return c.Gateway.Verify(certID, token)
}

// Authenticator is the auth step of the interceptor chain.
type Authenticator struct {
	Verifier Verifier
	Limiter  *Limiter
	// Self is the server's own identity. A caller with a verified
	// certificate for it holds this server's own key: it is the server
	// probing itself (`security audit --deep` checks that a call without a
	// token is refused). Its failures are refused like any other but never
	// counted toward a lockout, so deep audits run back to back do not lock
	// out their own probe, nor anyone sharing its address; whoever holds
	// that key has nothing to guess.
	Self string
	// OnEvent, when set, is told about failures and lockouts on every call
	// and about a success once per connection and identity (the server's
	// credentials mark connections; see MarkConns). It must not block.
	OnEvent func(ctx context.Context, ev Event)
}

// Event is one authentication outcome. It never carries the token.
type Event struct {
	Kind   string // "auth.success", "auth.failure", "auth.lockout"
	Addr   string
	CertID string
	ID     string
	Method string
}

// AuthFunc is the go-grpc-middleware auth function.
func (a *Authenticator) AuthFunc(ctx context.Context) (context.Context, error) {
	addr, certID := PeerInfo(ctx)
	method, _ := grpc.Method(ctx)
	key := LimitKey(addr, certID)
	if wait, blocked := a.Limiter.Blocked(key); blocked {
		a.event(ctx, Event{Kind: "auth.lockout", Addr: addr, CertID: certID, Method: method})
		return nil, lockedOut(ctx, wait)
	}
	// A missing token is verified as "" (which never matches a real token)
	// so every path goes through the same verifier.
	token, err := grpcauth.AuthFromMD(ctx, "bearer")
	{
		if id, gen, ok := a.Verifier.Verify(certID, token); ok {
			if firstOnConn(ctx, id) {
				a.event(ctx, Event{Kind: "auth.success", Addr: addr, CertID: certID, ID: id, Method: method})
			}
			return WithCaller(ctx, Caller{ID: id, CertID: certID, Addr: addr, TokenGen: gen}), nil
		}
	}
	a.event(ctx, Event{Kind: "auth.failure", Addr: addr, CertID: certID, Method: method})
	if !a.isSelf(certID) {
		if wait, locked := a.Limiter.Fail(key); locked {
			a.event(ctx, Event{Kind: "auth.lockout", Addr: addr, CertID: certID, Method: method})
			return nil, lockedOut(ctx, wait)
		}
	}
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "missing bearer token: set CLAWDBOT_GATEWAY_TOKEN or run `moltbot certs init`")
	}
	return nil, status.Error(codes.Unauthenticated, "invalid token")
}

// isSelf: the caller proved it holds this server's own certificate key.
func (a *Authenticator) isSelf(certID string) bool { return a.Self != "" && certID == a.Self }

func (a *Authenticator) event(ctx context.Context, ev Event) {
	if a.OnEvent != nil {
		a.OnEvent(ctx, ev)
	}
}

func lockedOut(ctx context.Context, wait time.Duration) error {
	secs := int(wait.Seconds() + 0.999)
	_ = grpc.SetTrailer(ctx, metadata.Pairs("retry-after", strconv.Itoa(secs)))
	return status.Errorf(codes.ResourceExhausted, "too many failed authentication attempts from this address: retry after %d s", secs)
}

// LimitKey is the failed-auth limiter's bucket: the address, and with a
// verified client certificate its identity too. Internal ports always have
// one, so a bad token from one identity cannot lock out the others behind
// the same address; at the client port the owner's cli certificate gets its
// own bucket, so token-only failures arriving through docker-proxy's single
// address cannot lock the owner out. A certificate can only be presented
// by whoever holds its CA-issued key.
func LimitKey(addr, certID string) string {
	if certID == "" {
		return addr
	}
	return certID + "@" + addr
}
