package auth

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Table maps a full method name to the identities allowed to call it.
// Anything not listed is denied.
type Table map[string][]string

// Allowed reports whether id may call method.
func (t Table) Allowed(method, id string) bool {
	for _, a := range t[method] {
		if a == id {
			return true
		}
	}
	return false
}

// Check returns PermissionDenied unless the caller in ctx may call method.
func (t Table) Check(ctx context.Context, method string) error {
	c, ok := CallerFrom(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "unauthenticated")
	}
	if !t.Allowed(method, c.ID) {
		if c.ID == RoleClient && t.Allowed(method, RoleOwner) {
			return status.Error(codes.PermissionDenied, OwnerOnly(method))
		}
		return status.Errorf(codes.PermissionDenied, "%s may not call %s", c.ID, method)
	}
	return nil
}

// OwnerBundleFix is how a caller becomes the owner.
const OwnerBundleFix = "run with the owner's bundle (pki/cli.pem, cli-key.pem, cli.token)"

// OwnerOnly is the refusal of an owner-only method to a client: a plain
// sentence naming the method and the fix.
func OwnerOnly(method string) string {
	short := method
	if i := strings.LastIndexByte(method, '/'); i >= 0 {
		short = method[i+1:]
	}
	return fmt.Sprintf("owner only: %s needs the owner's certificate and cli.token, not the gateway token; %s", short, OwnerBundleFix)
}

// UnaryInterceptor enforces the table on unary calls.
func (t Table) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if err := t.Check(ctx, info.FullMethod); err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
}

// StreamInterceptor enforces the table on streams.
func (t Table) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if err := t.Check(ss.Context(), info.FullMethod); err != nil {
			return err
		}
		return h(srv, ss)
	}
}

// MissingRows returns the methods of the service descriptions that have no
// row in t; tests assert it is empty.
func MissingRows(t Table, descs ...*grpc.ServiceDesc) []string {
	var missing []string
	for _, d := range descs {
		for _, m := range d.Methods {
			if _, ok := t["/"+d.ServiceName+"/"+m.MethodName]; !ok {
				missing = append(missing, "/"+d.ServiceName+"/"+m.MethodName)
			}
		}
		for _, s := range d.Streams {
			if _, ok := t["/"+d.ServiceName+"/"+s.StreamName]; !ok {
				missing = append(missing, "/"+d.ServiceName+"/"+s.StreamName)
			}
		}
	}
	return missing
}
