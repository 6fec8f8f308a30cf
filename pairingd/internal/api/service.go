// Package api is pairingd's gRPC surface: thin handlers over package pairing.
// Transport security, authentication and the Authz table are enforced by the
// server kit's interceptors; this package only reads the caller they put in
// the context.
package api

import (
	"context"
	"fmt"
	"strconv"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/moltbot/moltbot-secure/pairingd/internal/pairing"
	"github.com/moltbot/moltbot-secure/pairingd/internal/store"
	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// Config holds the Service's dependencies.
type Config struct {
	Pairing *pairing.Service
	Logger  hclog.Logger
	// WatchBuffer is the per-watcher event buffer (0: pairing.DefaultWatchBuffer).
	WatchBuffer int
}

// Service implements pairingv1.PairingServer.
type Service struct {
	pairingv1.UnsafePairingServer

	p        *pairing.Service
	log      hclog.Logger
	watchBuf int
}

var _ pairingv1.PairingServer = (*Service)(nil)

// New builds the service.
func New(cfg Config) *Service {
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Service{p: cfg.Pairing, log: log, watchBuf: cfg.WatchBuffer}
}

// RegisterService registers s on r.
func RegisterService(r grpc.ServiceRegistrar, s *Service) {
	pairingv1.RegisterPairingServer(r, s)
}

// Authz is the authorization table: who may call each method. Default deny.
func Authz() map[string][]string {
	both := []string{auth.IDGateway, auth.IDCLI}
	return map[string][]string{
		pairingv1.Pairing_Request_FullMethodName:     both,
		pairingv1.Pairing_IsAllowed_FullMethodName:   both,
		pairingv1.Pairing_List_FullMethodName:        both,
		pairingv1.Pairing_Watch_FullMethodName:       both,
		pairingv1.Pairing_Import_FullMethodName:      both,
		pairingv1.Pairing_ListAllowed_FullMethodName: both,
		pairingv1.Pairing_Approve_FullMethodName:     both,
		pairingv1.Pairing_Reject_FullMethodName:      both,
		pairingv1.Pairing_Revoke_FullMethodName:      both,
	}
}

// OnBehalfOfHeader carries, on calls from the gateway's admin proxy, the
// verified identity of the gateway's own caller (e.g. "cli"). pairingd trusts
// it only when the transport identity is the gateway.
const OnBehalfOfHeader = auth.OnBehalfOfHeader

// callerKey is the key wrong codes count against: the verified identity, so
// the gateway and the operator's CLI have separate lockouts. Calls the
// gateway forwards for its admin client count as "gateway>cli", apart from
// the gateway's own calls: a brute force through the proxy locks out the
// proxy path only, never the gateway's message pipeline.
func callerKey(ctx context.Context) string {
	c, ok := auth.CallerFrom(ctx)
	if !ok || c.ID == "" {
		return "unauthenticated"
	}
	if c.ID != auth.IDGateway {
		return c.ID
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(OnBehalfOfHeader); len(v) == 1 && validForwarded(v[0]) {
		return c.ID + ">" + v[0]
	}
	return c.ID
}

// validForwarded accepts identity-shaped values only, so the header cannot
// mint unbounded lockout keys or inject into logs.
func validForwarded(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

func (s *Service) fail(ctx context.Context, method string, err error) error {
	if d, ok := pairing.IsLocked(err); ok {
		secs := int(d.Seconds() + 0.999)
		_ = grpc.SetTrailer(ctx, metadata.Pairs("retry-after", strconv.Itoa(secs)))
	}
	st := errs.ToStatus(err)
	if errs.Code(err) == codes.Unknown { // not a domain class: the cause stays in the log
		s.log.Error("pairing call failed", "method", method, "caller", callerKey(ctx), "error", err)
	} else {
		s.log.Debug("pairing call refused", "method", method, "caller", callerKey(ctx), "error", err)
	}
	return st
}

func pendingToProto(p store.Pending) *pairingv1.PendingRequest {
	out := &pairingv1.PendingRequest{Channel: p.Channel, SenderId: p.SenderID, Code: p.Code, Meta: p.Meta}
	if !p.CreatedAt.IsZero() {
		out.CreatedAt = timestamppb.New(p.CreatedAt)
	}
	if !p.ExpiresAt.IsZero() {
		out.ExpiresAt = timestamppb.New(p.ExpiresAt)
	}
	return out
}

// Request implements pairingv1.PairingServer.
func (s *Service) Request(ctx context.Context, req *pairingv1.RequestRequest) (*pairingv1.RequestResponse, error) {
	r, err := s.p.Request(ctx, req.GetChannel(), req.GetSenderId(), req.GetMeta())
	if err != nil {
		return nil, s.fail(ctx, "Request", err)
	}
	out := &pairingv1.RequestResponse{Code: r.Code, Created: r.Created, QueueFull: r.QueueFull, ResendAllowed: r.ResendAllowed}
	if !r.ExpiresAt.IsZero() {
		out.ExpiresAt = timestamppb.New(r.ExpiresAt)
	}
	return out, nil
}

// List implements pairingv1.PairingServer.
func (s *Service) List(ctx context.Context, req *pairingv1.ListRequest) (*pairingv1.ListResponse, error) {
	reqs, full, err := s.p.List(ctx, req.GetChannel())
	if err != nil {
		return nil, s.fail(ctx, "List", err)
	}
	out := &pairingv1.ListResponse{FullChannels: full}
	for _, p := range reqs {
		out.Requests = append(out.Requests, pendingToProto(p))
	}
	return out, nil
}

// Approve implements pairingv1.PairingServer.
func (s *Service) Approve(ctx context.Context, req *pairingv1.ApproveRequest) (*pairingv1.ApproveResponse, error) {
	r, err := s.p.Approve(ctx, callerKey(ctx), req.GetChannel(), req.GetCode())
	if err != nil {
		return nil, s.fail(ctx, "Approve", err)
	}
	return &pairingv1.ApproveResponse{SenderId: r.SenderID, Meta: r.Meta}, nil
}

// Reject implements pairingv1.PairingServer.
func (s *Service) Reject(ctx context.Context, req *pairingv1.RejectRequest) (*pairingv1.RejectResponse, error) {
	id, err := s.p.Reject(ctx, callerKey(ctx), req.GetChannel(), req.GetCode())
	if err != nil {
		return nil, s.fail(ctx, "Reject", err)
	}
	return &pairingv1.RejectResponse{SenderId: id}, nil
}

// Revoke implements pairingv1.PairingServer.
func (s *Service) Revoke(ctx context.Context, req *pairingv1.RevokeRequest) (*pairingv1.RevokeResponse, error) {
	if err := s.p.Revoke(ctx, req.GetChannel(), req.GetSenderId()); err != nil {
		return nil, s.fail(ctx, "Revoke", err)
	}
	return &pairingv1.RevokeResponse{}, nil
}

// IsAllowed implements pairingv1.PairingServer.
func (s *Service) IsAllowed(ctx context.Context, req *pairingv1.IsAllowedRequest) (*pairingv1.IsAllowedResponse, error) {
	ok, err := s.p.IsAllowed(ctx, req.GetChannel(), req.GetSenderId())
	if err != nil {
		return nil, s.fail(ctx, "IsAllowed", err)
	}
	return &pairingv1.IsAllowedResponse{Allowed: ok}, nil
}

// ListAllowed implements pairingv1.PairingServer.
func (s *Service) ListAllowed(ctx context.Context, req *pairingv1.ListAllowedRequest) (*pairingv1.ListAllowedResponse, error) {
	list, err := s.p.ListAllowed(ctx, req.GetChannel())
	if err != nil {
		return nil, s.fail(ctx, "ListAllowed", err)
	}
	out := &pairingv1.ListAllowedResponse{}
	for _, a := range list {
		out.Senders = append(out.Senders, &pairingv1.AllowedSender{
			Channel: a.Channel, SenderId: a.SenderID, ApprovedAt: timestamppb.New(a.ApprovedAt),
		})
	}
	return out, nil
}

// Import implements pairingv1.PairingServer.
func (s *Service) Import(ctx context.Context, req *pairingv1.ImportRequest) (*pairingv1.ImportResponse, error) {
	r, err := s.p.Import(ctx, req.GetChannel(), req.GetPairingJson(), req.GetAllowFromJson())
	if err != nil {
		return nil, s.fail(ctx, "Import", err)
	}
	return &pairingv1.ImportResponse{
		PendingImported: int32(r.PendingImported),
		AllowedImported: int32(r.AllowedImported),
		Skipped:         int32(r.Skipped),
	}, nil
}

var kinds = map[pairing.EventKind]pairingv1.WatchResponse_Kind{
	pairing.EventRequested: pairingv1.WatchResponse_KIND_REQUESTED,
	pairing.EventQueueFull: pairingv1.WatchResponse_KIND_QUEUE_FULL,
	pairing.EventApproved:  pairingv1.WatchResponse_KIND_APPROVED,
	pairing.EventRejected:  pairingv1.WatchResponse_KIND_REJECTED,
	pairing.EventRevoked:   pairingv1.WatchResponse_KIND_REVOKED,
	pairing.EventExpired:   pairingv1.WatchResponse_KIND_EXPIRED,
}

// Watch implements pairingv1.PairingServer: a server stream of events until
// the client goes away.
func (s *Service) Watch(req *pairingv1.WatchRequest, stream grpc.ServerStreamingServer[pairingv1.WatchResponse]) error {
	ctx := stream.Context()
	sub, err := s.p.Watch(req.GetChannel(), s.watchBuf)
	if err != nil {
		return s.fail(ctx, "Watch", err)
	}
	defer sub.Close()
	// Headers now, so the client knows the subscription is live before any event.
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-sub.C():
			if !ok {
				return s.fail(ctx, "Watch", fmt.Errorf("watcher fell too far behind and was dropped; reconnect and re-list: %w", errs.ErrResourceExhausted))
			}
			if err := stream.Send(&pairingv1.WatchResponse{
				Kind: kinds[ev.Kind], Request: pendingToProto(ev.Request), At: timestamppb.New(ev.At),
			}); err != nil {
				return err
			}
		}
	}
}
