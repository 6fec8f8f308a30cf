package webui

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// Services collects the client port's service implementations exactly as
// they are registered on the gRPC server (it is a grpc.ServiceRegistrar):
// the UI calls the same methods, in process, through the same table.
type Services struct {
	methods map[string]method
}

type method struct {
	impl   any
	unary  *grpc.MethodDesc
	stream *grpc.StreamDesc
}

var _ grpc.ServiceRegistrar = (*Services)(nil)

// RegisterService implements grpc.ServiceRegistrar.
func (s *Services) RegisterService(sd *grpc.ServiceDesc, impl any) {
	if s.methods == nil {
		s.methods = map[string]method{}
	}
	for i := range sd.Methods {
		s.methods["/"+sd.ServiceName+"/"+sd.Methods[i].MethodName] = method{impl: impl, unary: &sd.Methods[i]}
	}
	for i := range sd.Streams {
		s.methods["/"+sd.ServiceName+"/"+sd.Streams[i].StreamName] = method{impl: impl, stream: &sd.Streams[i]}
	}
}

// Methods lists the collected full method names.
func (s *Services) Methods() []string {
	out := make([]string, 0, len(s.methods))
	for m := range s.methods {
		out = append(out, m)
	}
	return out
}

// IsStream says whether full method m is a server stream.
func (s *Services) IsStream(m string) bool { return s.methods[m].stream != nil }

// Rules is what the adapter checks before any handler runs: the client
// port's table, and the methods never offered to a web page.
type Rules struct {
	Table auth.Table
	// NotOverHTTP returns why a method is not served to the page ("" when it is).
	NotOverHTTP func(method string) string
	// Guard wraps every stream as on the gRPC port (the token-rotation
	// guard ends streams opened with a rotated gateway token); nil: none.
	Guard grpc.StreamServerInterceptor
}

// check is the adapter's authorization: the table first (so a client gets
// the same "owner only" answer as over gRPC), then the HTTP exclusions.
func (r Rules) check(ctx context.Context, m string) error {
	if err := r.Table.Check(ctx, m); err != nil {
		return err
	}
	if why := r.NotOverHTTP(m); why != "" {
		return status.Errorf(codes.PermissionDenied, "not offered to the Control UI: %s; use the CLI", why)
	}
	return nil
}

// headerStream gives handlers the grpc.SetHeader they use (the pairing
// proxy's x-moltbot-notified) and keeps what they set.
type headerStream struct {
	method string
	header metadata.MD
}

func (h *headerStream) Method() string { return h.method }
func (h *headerStream) SetHeader(md metadata.MD) error {
	h.header = metadata.Join(h.header, md)
	return nil
}
func (h *headerStream) SendHeader(md metadata.MD) error { return h.SetHeader(md) }
func (h *headerStream) SetTrailer(metadata.MD) error    { return nil }

var unmarshal = protojson.UnmarshalOptions{}

// Marshal is the JSON the page reads (proto JSON names, zero values kept).
var Marshal = protojson.MarshalOptions{EmitUnpopulated: true}

// Unary calls a unary method with the request JSON body, as the caller in
// ctx. The returned error is a gRPC status.
func (s *Services) Unary(ctx context.Context, rules Rules, m string, body []byte) (proto.Message, metadata.MD, error) {
	md, ok := s.methods[m]
	if !ok || md.unary == nil {
		return nil, nil, status.Errorf(codes.Unimplemented, "unknown method %s", m)
	}
	hs := &headerStream{method: m}
	ctx = grpc.NewContextWithServerTransportStream(ctx, hs)
	dec := func(v any) error {
		if len(body) == 0 {
			return nil
		}
		if err := unmarshal.Unmarshal(body, v.(proto.Message)); err != nil {
			return status.Errorf(codes.InvalidArgument, "request body: %v", err)
		}
		return nil
	}
	// The generated handler runs the interceptor with the method name, as
	// the gRPC server does.
	ic := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if err := rules.check(ctx, info.FullMethod); err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
	resp, err := md.unary.Handler(md.impl, ctx, dec, ic)
	if err != nil {
		return nil, hs.header, errs.ToStatus(err)
	}
	msg, ok := resp.(proto.Message)
	if !ok {
		return nil, hs.header, status.Error(codes.Internal, "internal error")
	}
	return msg, hs.header, nil
}

// Stream calls a server-streaming method; send gets each message.
func (s *Services) Stream(ctx context.Context, rules Rules, m string, body []byte, send func(proto.Message) error) error {
	md, ok := s.methods[m]
	if !ok || md.stream == nil {
		return status.Errorf(codes.Unimplemented, "unknown method %s", m)
	}
	if err := rules.check(ctx, m); err != nil {
		return err
	}
	if md.stream.ClientStreams {
		return status.Errorf(codes.Unimplemented, "%s streams from the client: not offered to the Control UI", m)
	}
	ss := &serverStream{ctx: grpc.NewContextWithServerTransportStream(ctx, &headerStream{method: m}), body: body, send: send}
	if rules.Guard != nil {
		return errs.ToStatus(rules.Guard(md.impl, ss, &grpc.StreamServerInfo{FullMethod: m, IsServerStream: true}, md.stream.Handler))
	}
	return errs.ToStatus(md.stream.Handler(md.impl, ss))
}

// serverStream is a grpc.ServerStream over one request body and an event
// writer.
type serverStream struct {
	ctx  context.Context
	body []byte
	read bool
	send func(proto.Message) error
}

func (s *serverStream) SetHeader(metadata.MD) error  { return nil }
func (s *serverStream) SendHeader(metadata.MD) error { return nil }
func (s *serverStream) SetTrailer(metadata.MD)       {}
func (s *serverStream) Context() context.Context     { return s.ctx }
func (s *serverStream) SendMsg(m any) error {
	if err := s.ctx.Err(); err != nil {
		return err
	}
	msg, ok := m.(proto.Message)
	if !ok {
		return fmt.Errorf("send %T: not a message", m)
	}
	return s.send(msg)
}
func (s *serverStream) RecvMsg(m any) error {
	if s.read {
		return io.EOF
	}
	s.read = true
	if len(s.body) == 0 {
		return nil
	}
	if err := unmarshal.Unmarshal(s.body, m.(proto.Message)); err != nil {
		return status.Errorf(codes.InvalidArgument, "request body: %v", err)
	}
	return nil
}

// httpStatus maps a gRPC code to the HTTP status the page sees.
func httpStatus(err error) int {
	switch status.Code(err) {
	case codes.OK:
		return 200
	case codes.InvalidArgument, codes.OutOfRange:
		return 400
	case codes.Unauthenticated:
		return 401
	case codes.PermissionDenied:
		return 403
	case codes.NotFound, codes.Unimplemented:
		return 404
	case codes.AlreadyExists, codes.Aborted:
		return 409
	case codes.FailedPrecondition:
		return 412
	case codes.ResourceExhausted:
		return 429
	case codes.Unavailable:
		return 503
	case codes.DeadlineExceeded:
		return 504
	case codes.Canceled:
		return 499
	}
	return 500
}

var errNoCredential = errors.New("no credential: log in (a device session in X-Moltbot-Session, or the gateway token in Authorization: Bearer)")
