package api

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/moltbot/moltbot-secure/gateway/internal/channels/local"
	"github.com/moltbot/moltbot-secure/gateway/internal/pipeline"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// Send delivers a message on the local channel, as if a user had sent it,
// and returns the bot's replies.
func (s *Service) Send(ctx context.Context, req *gatewayv1.SendRequest) (*gatewayv1.SendResponse, error) {
	p := s.cfg.Messaging.current()
	if p == nil {
		return nil, fmt.Errorf("messaging is not running: %w", errs.ErrUnavailable)
	}
	switch ch := req.GetChannel(); {
	case ch == "":
		return nil, fmt.Errorf("channel: empty; use --channel local: %w", errs.ErrInvalidArgument)
	case ch != local.Name && p.HasChannel(ch):
		return nil, fmt.Errorf("channel %q: Send injects messages on the local channel only; use --channel local: %w", ch, errs.ErrInvalidArgument)
	case ch != local.Name:
		return nil, fmt.Errorf("channel %q: unknown; Send injects messages on the local channel (--channel local): %w", ch, errs.ErrInvalidArgument)
	}
	// Only the owner principal may send as a local owner id (the roles
	// table may name the owner differently; this is its one use here).
	c, _ := auth.CallerFrom(ctx)
	r, err := p.SendLocal(ctx, pipeline.Message{From: req.GetFrom(), GroupID: req.GetGroupId(), Text: req.GetText(),
		FromOwner: c.ID == auth.RoleOwner})
	if err != nil {
		return nil, err
	}
	return &gatewayv1.SendResponse{Replies: r.Replies, ReachedAgent: r.ReachedAgent, SessionKey: r.SessionKey, Decision: r.Decision}, nil
}

// ListSessions lists the session index.
func (s *Service) ListSessions(context.Context, *gatewayv1.ListSessionsRequest) (*gatewayv1.ListSessionsResponse, error) {
	p := s.cfg.Messaging.current()
	if p == nil {
		return nil, fmt.Errorf("messaging is not running: %w", errs.ErrUnavailable)
	}
	out := &gatewayv1.ListSessionsResponse{}
	for _, x := range p.Sessions() {
		out.Sessions = append(out.Sessions, &gatewayv1.Session{
			Key: x.Key, AgentId: x.AgentID, Channel: x.Channel, Main: x.Main,
			LastActiveAt: timestamppb.New(x.LastActiveAt), Sandboxed: x.Sandboxed,
		})
	}
	return out, nil
}

func (m MessagingDeps) current() *pipeline.Pipeline {
	if m.Pipeline == nil {
		return nil
	}
	return m.Pipeline()
}

// PairingStatus is the pairing part of `status --all`: pending requests per
// channel and the channels whose queue is full. Errors go in the message.
func (m MessagingDeps) PairingStatus(ctx context.Context) *gatewayv1.PairingStatus {
	if m.Pairing == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	r, err := m.Pairing.List(ctx, &pairingv1.ListRequest{})
	if err != nil {
		return &gatewayv1.PairingStatus{Error: errs.Text(err)}
	}
	st := &gatewayv1.PairingStatus{Pending: map[string]int32{}, FullChannels: r.GetFullChannels()}
	if p := m.current(); p != nil {
		for _, n := range p.ChannelNames() {
			st.Pending[n] = 0
		}
	}
	for _, q := range r.GetRequests() {
		st.Pending[q.GetChannel()]++
	}
	return st
}

// ChannelsStatus is the channels part of `status --all`.
func (m MessagingDeps) ChannelsStatus() []*gatewayv1.ChannelStatus {
	p := m.current()
	if p == nil {
		return nil
	}
	var out []*gatewayv1.ChannelStatus
	for _, c := range p.Channels() {
		cs := &gatewayv1.ChannelStatus{Name: c.Name, Connected: c.Connected, DmPolicy: c.DMPolicy, GroupPolicy: c.GroupPolicy}
		if c.Err != nil {
			cs.Error = c.Err.Error()
		}
		if !c.LastOK.IsZero() {
			cs.LastOkAt = timestamppb.New(c.LastOK)
		}
		if !c.NextRetry.IsZero() {
			cs.NextRetryAt = timestamppb.New(c.NextRetry)
		}
		out = append(out, cs)
	}
	return out
}
