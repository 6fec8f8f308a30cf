// Package errs holds the small set of error classes shared by every service.
// Domain code wraps them with %w and context; ToStatus maps them to gRPC codes
// once, at the server edge, and FromStatus maps them back on the client so
// errors.Is works across the wire (the containerd errdefs pattern).
package errs

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error classes. The text of a wrapping error reaches the client, so it must
// never contain a secret.
var (
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrPermissionDenied   = errors.New("permission denied")
	ErrUnauthenticated    = errors.New("unauthenticated")
	ErrResourceExhausted  = errors.New("resource exhausted")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrUnavailable        = errors.New("unavailable")
	ErrDeadlineExceeded   = errors.New("deadline exceeded")
	ErrUnimplemented      = errors.New("unimplemented")
)

var classes = []struct {
	err  error
	code codes.Code
}{
	{ErrInvalidArgument, codes.InvalidArgument},
	{ErrNotFound, codes.NotFound},
	{ErrAlreadyExists, codes.AlreadyExists},
	{ErrPermissionDenied, codes.PermissionDenied},
	{ErrUnauthenticated, codes.Unauthenticated},
	{ErrResourceExhausted, codes.ResourceExhausted},
	{ErrFailedPrecondition, codes.FailedPrecondition},
	{ErrUnavailable, codes.Unavailable},
	{ErrDeadlineExceeded, codes.DeadlineExceeded},
	{ErrUnimplemented, codes.Unimplemented},
}

// Code returns the gRPC code for err, or codes.Unknown when err belongs to no class.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	switch {
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	}
	for _, c := range classes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return codes.Unknown
}

// ToStatus converts a domain error to a gRPC status error. Errors of a known
// class keep their message; anything else becomes Internal with a generic
// message, because its text may carry internals (the caller logs the cause).
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := Code(err)
	if code == codes.Unknown {
		return status.Error(codes.Internal, "internal error")
	}
	return status.Error(code, err.Error())
}

// FromStatus maps a gRPC status error back to a domain error wrapping the
// matching class, so callers can use errors.Is on client-side errors.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	s, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, c := range classes {
		if c.code == s.Code() {
			return &remoteError{msg: s.Message(), class: c.err, st: s}
		}
	}
	return err
}

type remoteError struct {
	msg   string
	class error
	st    *status.Status
}

func (e *remoteError) Error() string              { return e.msg }
func (e *remoteError) Unwrap() error              { return e.class }
func (e *remoteError) GRPCStatus() *status.Status { return e.st }
