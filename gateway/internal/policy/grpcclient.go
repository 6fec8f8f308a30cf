package policy

import (
	"context"

	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// GRPCPairing adapts the generated pairingd client to PairingClient, mapping
// statuses back to errs classes so errors.Is works (ErrAlreadyExists, ...).
type GRPCPairing struct {
	C pairingv1.PairingClient
}

var _ PairingClient = GRPCPairing{}

// Request implements PairingClient.
func (g GRPCPairing) Request(ctx context.Context, channel, senderID string, meta map[string]string) (RequestResult, error) {
	r, err := g.C.Request(ctx, &pairingv1.RequestRequest{Channel: channel, SenderId: senderID, Meta: meta})
	if err != nil {
		return RequestResult{}, errs.FromStatus(err)
	}
	out := RequestResult{Code: r.GetCode(), Created: r.GetCreated(), QueueFull: r.GetQueueFull(), ResendAllowed: r.GetResendAllowed()}
	if r.GetExpiresAt() != nil {
		out.ExpiresAt = r.GetExpiresAt().AsTime()
	}
	return out, nil
}

// IsAllowed implements PairingClient.
func (g GRPCPairing) IsAllowed(ctx context.Context, channel, senderID string) (bool, error) {
	r, err := g.C.IsAllowed(ctx, &pairingv1.IsAllowedRequest{Channel: channel, SenderId: senderID})
	if err != nil {
		return false, errs.FromStatus(err)
	}
	return r.GetAllowed(), nil
}
