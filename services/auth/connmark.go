package auth

import (
	"context"
	"sync"

	"google.golang.org/grpc/stats"
)

// connMark remembers which identities already authenticated on one
// connection, so a success is recorded once per connection, not per call
// (the CLI opens one connection per command; apps keep theirs open).
type connMark struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

type connMarkKey struct{}

// firstOnConn reports whether id is new on the caller's connection. Without
// a mark (no ConnStats handler installed) every call counts: recording too
// much is the safe side.
func firstOnConn(ctx context.Context, id string) bool {
	m, ok := ctx.Value(connMarkKey{}).(*connMark)
	if !ok {
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.seen[id]; dup {
		return false
	}
	if m.seen == nil {
		m.seen = map[string]struct{}{}
	}
	m.seen[id] = struct{}{}
	return true
}

// ConnStats is a grpc stats.Handler that tags each connection with a fresh
// mark; grpc derives every call's context from the connection's, so the
// Authenticator can tell a connection's first success from the rest.
type ConnStats struct{}

var _ stats.Handler = ConnStats{}

// TagConn implements stats.Handler.
func (ConnStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return context.WithValue(ctx, connMarkKey{}, &connMark{})
}

// HandleConn implements stats.Handler.
func (ConnStats) HandleConn(context.Context, stats.ConnStats) {}

// TagRPC implements stats.Handler.
func (ConnStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

// HandleRPC implements stats.Handler.
func (ConnStats) HandleRPC(context.Context, stats.RPCStats) {}
