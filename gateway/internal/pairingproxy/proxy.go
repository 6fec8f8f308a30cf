// Package pairingproxy is the gateway's admin proxy for pairingd: the CLI
// reaches only the gateway, so the owner's pairing verbs (list, watch,
// approve, reject, revoke) are forwarded from here to pairingd.
//
// Who may call what is the client port's one table (gateway/internal/api
// authz.go): the owner only; Request, IsAllowed and Import are pairingd's
// gateway-internal and migration calls and are denied to everyone there,
// before any handler runs.
//
// Lockout: pairingd counts wrong codes per caller. Every forwarded call
// carries the original caller's verified identity in the
// x-moltbot-on-behalf-of header, which pairingd honours only from the
// gateway's own mTLS identity; a brute force through this proxy therefore
// locks out "gateway>cli", never the gateway's message pipeline ("gateway").
package pairingproxy

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/seclog"
)

// OnBehalfOfHeader names the forwarded caller (pairingd's api.OnBehalfOfHeader).
const OnBehalfOfHeader = auth.OnBehalfOfHeader

// NotifyHeader: a client sets it to "false" on Approve to skip the
// confirmation to the sender (`pairing approve --no-notify`).
const NotifyHeader = "x-moltbot-notify"

// NotifiedHeader is the response header saying what happened to the
// confirmation: "sent", "skipped", or "failed: <reason>".
const NotifiedHeader = "x-moltbot-notified"

// Config holds the proxy's dependencies.
type Config struct {
	Client pairingv1.PairingClient // pairingd, dialled as the gateway
	// HasChannel says whether a channel is configured; others are refused
	// before reaching pairingd.
	HasChannel func(name string) bool
	// Notify sends the approval confirmation to the sender (nil: never).
	Notify func(ctx context.Context, channel, senderID string) error
	// AddOwner adds an approved sender to channels.<channel>.owner and
	// applies it (Approve with owner set); nil refuses such approvals.
	AddOwner func(ctx context.Context, channel, senderID string) error
	// LetThrough says whether the channel's active DM policy lets an
	// approved sender through, and otherwise why (policy.LetThrough on the
	// running config); known is false for a channel it does not know. Nil:
	// ListAllowed leaves let_through unset.
	LetThrough func(channel, senderID string) (ok bool, because string, known bool)
	// Log records every decision made through the proxy: approve (with
	// what happened to the notice), reject, revoke, and a code lockout
	// (pairingd answering ResourceExhausted). Nil: not recorded.
	Log    *seclog.Log
	Logger hclog.Logger // where a failure to record is reported
}

// Service implements pairingv1.PairingServer by forwarding.
type Service struct {
	pairingv1.UnsafePairingServer
	c        pairingv1.PairingClient
	has      func(string) bool
	notify   func(context.Context, string, string) error
	addOwner func(context.Context, string, string) error
	through  func(string, string) (bool, string, bool)
	log      *seclog.Log
	logger   hclog.Logger
}

var _ pairingv1.PairingServer = (*Service)(nil)

// New builds the proxy.
func New(cfg Config) (*Service, error) {
	if cfg.Client == nil || cfg.HasChannel == nil {
		return nil, errors.New("pairingproxy: Config.Client and Config.HasChannel are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	return &Service{c: cfg.Client, has: cfg.HasChannel, notify: cfg.Notify, addOwner: cfg.AddOwner, through: cfg.LetThrough, log: cfg.Log, logger: cfg.Logger}, nil
}

// record writes a pairing decision (never the code: it is a credential
// until it expires).
func (s *Service) record(ctx context.Context, kind, channel, sender string, fields map[string]string) {
	target := channel
	if sender != "" {
		target += ":" + sender
	}
	if s.log == nil {
		return
	}
	ev := seclog.Decision(ctx, kind, target, fields)
	var err error
	if kind == "pairing.lockout" {
		// pairingd answers every further guess with the lockout: written
		// once a minute per caller and channel, the repeats are noise.
		err = s.log.RecordRepeat(kind+"|"+ev.Actor+"|"+target, ev)
	} else {
		err = s.log.Record(ev)
	}
	if err != nil {
		s.logger.Error("security log: event not recorded", "kind", kind, "error", err.Error())
	}
}

// refused forwards pairingd's error, recording a code lockout, which is
// pairingd's decision to stop this caller guessing.
func (s *Service) refused(ctx context.Context, verb, channel string, err error) error {
	err = fwd(err)
	if errors.Is(err, errs.ErrResourceExhausted) {
		s.record(ctx, "pairing.lockout", channel, "", map[string]string{"verb": verb})
	}
	return err
}

// RegisterService registers s on r.
func RegisterService(r grpc.ServiceRegistrar, s *Service) { pairingv1.RegisterPairingServer(r, s) }

// out builds the outgoing context: only the forwarded identity crosses,
// never the client's metadata (its token is for the gateway).
func out(ctx context.Context) context.Context {
	id := "unknown"
	if c, ok := auth.CallerFrom(ctx); ok && c.ID != "" {
		id = c.ID
	}
	return metadata.NewOutgoingContext(ctx, metadata.Pairs(OnBehalfOfHeader, id))
}

func (s *Service) channel(ch string, optional bool) error {
	if ch == "" && optional {
		return nil
	}
	if ch == "" {
		return fmt.Errorf("channel: empty; name a configured channel (e.g. telegram, local): %w", errs.ErrInvalidArgument)
	}
	if !s.has(ch) {
		return fmt.Errorf("channel %q: unknown; configure it under channels.%s first: %w", ch, ch, errs.ErrInvalidArgument)
	}
	return nil
}

// List implements pairingv1.PairingServer.
func (s *Service) List(ctx context.Context, req *pairingv1.ListRequest) (*pairingv1.ListResponse, error) {
	if err := s.channel(req.GetChannel(), true); err != nil {
		return nil, err
	}
	r, err := s.c.List(out(ctx), req)
	return r, fwd(err)
}

// ListAllowed implements pairingv1.PairingServer.
func (s *Service) ListAllowed(ctx context.Context, req *pairingv1.ListAllowedRequest) (*pairingv1.ListAllowedResponse, error) {
	if err := s.channel(req.GetChannel(), true); err != nil {
		return nil, err
	}
	r, err := s.c.ListAllowed(out(ctx), req)
	if err != nil {
		return nil, fwd(err)
	}
	// An approval is not a pass under every policy (dm.policy allowlist
	// counts only dm.allowFrom): say per sender what the running policy does.
	if s.through != nil {
		for _, a := range r.GetSenders() {
			if ok, because, known := s.through(a.GetChannel(), a.GetSenderId()); known {
				a.LetThrough, a.BlockedBecause = &ok, because
			}
		}
	}
	return r, nil
}

// Approve implements pairingv1.PairingServer, then sends the sender the
// confirmation unless the client asked not to.
func (s *Service) Approve(ctx context.Context, req *pairingv1.ApproveRequest) (*pairingv1.ApproveResponse, error) {
	if err := s.channel(req.GetChannel(), false); err != nil {
		return nil, err
	}
	if req.GetOwner() && s.addOwner == nil {
		return nil, fmt.Errorf("approve --owner: this gateway has no config store to write channels.%s.owner: %w", req.GetChannel(), errs.ErrFailedPrecondition)
	}
	r, err := s.c.Approve(out(ctx), req)
	if err != nil {
		return nil, s.refused(ctx, "approve", req.GetChannel(), err)
	}
	if req.GetOwner() {
		// Approved first: if the owner write fails, the sender is a plain
		// approved sender (own sandboxed session), never more.
		if err := s.addOwner(ctx, req.GetChannel(), r.GetSenderId()); err != nil {
			return nil, fmt.Errorf("the sender was approved but NOT made an owner (their DMs get their own sandboxed session): %w", err)
		}
	}
	state := "skipped"
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(NotifyHeader); s.notify != nil && (len(v) == 0 || v[0] != "false") {
		state = "sent"
		if err := s.notify(ctx, req.GetChannel(), r.GetSenderId()); err != nil {
			state = "failed: " + err.Error()
		}
	}
	s.record(ctx, "pairing.approve", req.GetChannel(), r.GetSenderId(), map[string]string{"notify": state})
	_ = grpc.SetHeader(ctx, metadata.Pairs(NotifiedHeader, state))
	return r, nil
}

// Reject implements pairingv1.PairingServer.
func (s *Service) Reject(ctx context.Context, req *pairingv1.RejectRequest) (*pairingv1.RejectResponse, error) {
	if err := s.channel(req.GetChannel(), false); err != nil {
		return nil, err
	}
	r, err := s.c.Reject(out(ctx), req)
	if err != nil {
		return nil, s.refused(ctx, "reject", req.GetChannel(), err)
	}
	s.record(ctx, "pairing.reject", req.GetChannel(), r.GetSenderId(), nil)
	return r, nil
}

// Revoke implements pairingv1.PairingServer.
func (s *Service) Revoke(ctx context.Context, req *pairingv1.RevokeRequest) (*pairingv1.RevokeResponse, error) {
	if err := s.channel(req.GetChannel(), false); err != nil {
		return nil, err
	}
	r, err := s.c.Revoke(out(ctx), req)
	if err != nil {
		return nil, s.refused(ctx, "revoke", req.GetChannel(), err)
	}
	s.record(ctx, "pairing.revoke", req.GetChannel(), req.GetSenderId(), nil)
	return r, nil
}

// Watch implements pairingv1.PairingServer: pairingd's stream, relayed.
func (s *Service) Watch(req *pairingv1.WatchRequest, stream grpc.ServerStreamingServer[pairingv1.WatchResponse]) error {
	if err := s.channel(req.GetChannel(), true); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	up, err := s.c.Watch(out(ctx), req)
	if err != nil {
		return fwd(err)
	}
	// pairingd sends headers once subscribed; pass that on so the client
	// knows no event can be missed from here on.
	if _, err := up.Header(); err != nil {
		return fwd(err)
	}
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	for {
		ev, err := up.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fwd(err)
		}
		if err := stream.Send(ev); err != nil {
			return err
		}
	}
}

var errNotExposed = fmt.Errorf("not exposed through the gateway: %w", errs.ErrPermissionDenied)

// Request is pairingd-internal: not exposed.
func (s *Service) Request(context.Context, *pairingv1.RequestRequest) (*pairingv1.RequestResponse, error) {
	return nil, errNotExposed
}

// IsAllowed is pairingd-internal: not exposed.
func (s *Service) IsAllowed(context.Context, *pairingv1.IsAllowedRequest) (*pairingv1.IsAllowedResponse, error) {
	return nil, errNotExposed
}

// Import runs through `security migrate`, not this proxy.
func (s *Service) Import(context.Context, *pairingv1.ImportRequest) (*pairingv1.ImportResponse, error) {
	return nil, errNotExposed
}

// fwd keeps pairingd's status (code and message) as the proxy's answer,
// as an errs class so the server edge maps it back to the same code.
func fwd(err error) error {
	if err == nil {
		return nil
	}
	return errs.FromStatus(err)
}
