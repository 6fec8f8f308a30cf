package auth

import (
	"context"
	"errors"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var errTokenRotated = errors.New("gateway token rotated")

// streamRegistry tracks open streams by the token generation they were
// authenticated with, so a rotation can end them.
type streamRegistry struct {
	mu   sync.Mutex
	next uint64
	open map[uint64]streamEntry
}

type streamEntry struct {
	gen    uint64
	cancel context.CancelCauseFunc
}

func (g *GatewayToken) registry() *streamRegistry {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.streams == nil {
		g.streams = &streamRegistry{open: map[uint64]streamEntry{}}
		g.onSwap = append(g.onSwap, g.streams.closeOlder)
	}
	return g.streams
}

func (r *streamRegistry) add(gen uint64, cancel context.CancelCauseFunc) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next++
	r.open[r.next] = streamEntry{gen: gen, cancel: cancel}
	return r.next
}

func (r *streamRegistry) remove(id uint64) {
	r.mu.Lock()
	delete(r.open, id)
	r.mu.Unlock()
}

func (r *streamRegistry) closeOlder(gen uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.open {
		if e.gen < gen {
			e.cancel(errTokenRotated)
		}
	}
}

type guardedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *guardedStream) Context() context.Context { return s.ctx }

// StreamGuard ends open streams authenticated with a token that has since
// been rotated: rotation must cut off whoever held the old token, not only
// refuse their next call. It runs after the auth interceptor.
func (g *GatewayToken) StreamGuard() grpc.StreamServerInterceptor {
	reg := g.registry()
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		c, ok := CallerFrom(ss.Context())
		if !ok || c.TokenGen == 0 {
			return h(srv, ss)
		}
		ctx, cancel := context.WithCancelCause(ss.Context())
		defer cancel(nil)
		id := reg.add(c.TokenGen, cancel)
		defer reg.remove(id)
		if g.Generation() != c.TokenGen {
			cancel(errTokenRotated)
		}
		err := h(srv, &guardedStream{ServerStream: ss, ctx: ctx})
		if errors.Is(context.Cause(ctx), errTokenRotated) {
			return status.Error(codes.Unauthenticated, "gateway token rotated: reconnect with the new token")
		}
		return err
	}
}
