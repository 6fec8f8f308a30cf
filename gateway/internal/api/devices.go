package api

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/moltbot/moltbot-secure/gateway/internal/devices"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/seclog"
)

// DevicesDeps: the Control UI's browser devices (ListDevices,
// ApproveDevice, RejectDevice, RevokeDevice). Nil Store answers
// FailedPrecondition.
type DevicesDeps struct {
	Store    *devices.Store
	Sessions *devices.Sessions
	// Log records every decision (approve, reject, revoke); nil: none.
	Log seclog.Recorder
	// DeviceAuthDisabled reports gateway.controlUi.dangerouslyDisableDeviceAuth.
	DeviceAuthDisabled func() bool
	// URL is where the Control UI is served, for Status (empty: not served).
	URL string
}

func (s *Service) devices() (*devices.Store, error) {
	if s.cfg.Devices.Store == nil {
		return nil, fmt.Errorf("the Control UI's device store is not wired in this gateway: %w", errs.ErrFailedPrecondition)
	}
	return s.cfg.Devices.Store, nil
}

// deviceErr gives the store's errors their class.
func deviceErr(err error) error {
	switch {
	case errors.Is(err, devices.ErrNotFound):
		return fmt.Errorf("%w: %w", err, errs.ErrNotFound)
	case errors.Is(err, devices.ErrBadRole), errors.Is(err, devices.ErrAmbiguousRef), errors.Is(err, devices.ErrBadKey):
		return fmt.Errorf("%w: %w", err, errs.ErrInvalidArgument)
	case errors.Is(err, devices.ErrNotPending), errors.Is(err, devices.ErrNotApproved):
		return fmt.Errorf("%w: %w", err, errs.ErrFailedPrecondition)
	case errors.Is(err, devices.ErrTooMany):
		return fmt.Errorf("%w: %w", err, errs.ErrResourceExhausted)
	}
	return err
}

func (s *Service) deviceProto(d devices.Device) *gatewayv1.Device {
	out := &gatewayv1.Device{Fingerprint: d.Fingerprint, State: d.State, Role: d.Role, Name: d.Name, Origin: d.Origin,
		CreatedAt: timestamppb.New(d.CreatedAt)}
	if !d.ApprovedAt.IsZero() {
		out.ApprovedAt = timestamppb.New(d.ApprovedAt)
	}
	if !d.LastSeen.IsZero() {
		out.LastSeen = timestamppb.New(d.LastSeen)
	}
	if s.cfg.Devices.Sessions != nil {
		out.Sessions = int32(s.cfg.Devices.Sessions.Active(d.Fingerprint))
	}
	return out
}

func (s *Service) deviceEvent(ctx context.Context, kind string, d devices.Device, fields map[string]string) {
	if err := seclog.Put(s.cfg.Devices.Log, seclog.Decision(ctx, kind, d.Fingerprint, fields)); err != nil {
		s.cfg.Logger.Error("security log: event not recorded", "kind", kind, "error", err.Error())
	}
}

// ListDevices lists every device.
func (s *Service) ListDevices(_ context.Context, _ *gatewayv1.ListDevicesRequest) (*gatewayv1.ListDevicesResponse, error) {
	st, err := s.devices()
	if err != nil {
		return nil, err
	}
	out := &gatewayv1.ListDevicesResponse{}
	if f := s.cfg.Devices.DeviceAuthDisabled; f != nil {
		out.DeviceAuthDisabled = f()
	}
	for _, d := range st.List() {
		out.Devices = append(out.Devices, s.deviceProto(d))
	}
	return out, nil
}

// ApproveDevice lets a pending device in with a role (owner by default).
func (s *Service) ApproveDevice(ctx context.Context, req *gatewayv1.ApproveDeviceRequest) (*gatewayv1.ApproveDeviceResponse, error) {
	st, err := s.devices()
	if err != nil {
		return nil, err
	}
	d, err := st.Approve(req.GetFingerprint(), req.GetRole())
	if err != nil {
		return nil, deviceErr(err)
	}
	s.deviceEvent(ctx, "device.approve", d, map[string]string{"role": d.Role, "name": d.Name})
	return &gatewayv1.ApproveDeviceResponse{Device: s.deviceProto(d)}, nil
}

// RejectDevice drops a pending device.
func (s *Service) RejectDevice(ctx context.Context, req *gatewayv1.RejectDeviceRequest) (*gatewayv1.RejectDeviceResponse, error) {
	st, err := s.devices()
	if err != nil {
		return nil, err
	}
	d, err := st.Reject(req.GetFingerprint())
	if err != nil {
		return nil, deviceErr(err)
	}
	s.deviceEvent(ctx, "device.reject", d, map[string]string{"name": d.Name})
	return &gatewayv1.RejectDeviceResponse{Device: s.deviceProto(d)}, nil
}

// RevokeDevice removes an approved device; the store's hook ends its
// sessions (and the streams derived from them) before this returns.
func (s *Service) RevokeDevice(ctx context.Context, req *gatewayv1.RevokeDeviceRequest) (*gatewayv1.RevokeDeviceResponse, error) {
	st, err := s.devices()
	if err != nil {
		return nil, err
	}
	var ended int
	if ss := s.cfg.Devices.Sessions; ss != nil {
		if d, ok := st.Get(req.GetFingerprint()); ok {
			ended = ss.Active(d.Fingerprint)
		}
	}
	d, err := st.Revoke(req.GetFingerprint())
	if err != nil {
		return nil, deviceErr(err)
	}
	s.deviceEvent(ctx, "device.revoke", d, map[string]string{"role": d.Role, "sessions_ended": fmt.Sprint(ended)})
	return &gatewayv1.RevokeDeviceResponse{Device: s.deviceProto(d), SessionsEnded: int32(ended)}, nil
}
