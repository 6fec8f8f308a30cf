package api

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/moltbot/moltbot-secure/pairingd/internal/pairing"
	"github.com/moltbot/moltbot-secure/pairingd/internal/store"
	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
)

// The server kit derives the caller from the mTLS cert and token; here a
// test header stands in for that step, and the real authz table is enforced.
const testCallerHeader = "x-test-caller"

func callerFromMD(ctx context.Context) context.Context {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(testCallerHeader); len(v) == 1 {
		return auth.WithCaller(ctx, auth.Caller{ID: v[0]})
	}
	return ctx
}

type harness struct {
	client pairingv1.PairingClient
	svc    *pairing.Service
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "credentials", "pairing.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	ps, err := pairing.New(pairing.Config{Store: st})
	require.NoError(t, err)

	table := auth.Table(Authz())
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(
			func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				return h(callerFromMD(ctx), req)
			},
			table.UnaryInterceptor(),
		),
		grpc.ChainStreamInterceptor(
			func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
				return h(srv, &ctxStream{ServerStream: ss, ctx: callerFromMD(ss.Context())})
			},
			table.StreamInterceptor(),
		),
	)
	RegisterService(srv, New(Config{Pairing: ps}))
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return &harness{client: pairingv1.NewPairingClient(conn), svc: ps}
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

func as(id string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), testCallerHeader, id)
}

func TestAuthzCoversServiceDesc(t *testing.T) {
	table := Authz()
	names := map[string]bool{}
	for _, m := range pairingv1.Pairing_ServiceDesc.Methods {
		names["/"+pairingv1.Pairing_ServiceDesc.ServiceName+"/"+m.MethodName] = true
	}
	for _, s := range pairingv1.Pairing_ServiceDesc.Streams {
		names["/"+pairingv1.Pairing_ServiceDesc.ServiceName+"/"+s.StreamName] = true
	}
	require.Len(t, names, 9)
	for n := range names {
		require.NotEmpty(t, table[n], "no authz row for %s", n)
	}
	for n := range table {
		require.True(t, names[n], "authz row for unknown method %s", n)
	}
}

func TestAuthzMatrix(t *testing.T) {
	h := newHarness(t)
	calls := map[string]func(ctx context.Context) error{
		"Request": func(ctx context.Context) error {
			_, err := h.client.Request(ctx, &pairingv1.RequestRequest{Channel: "local", SenderId: "m"})
			return err
		},
		"List": func(ctx context.Context) error {
			_, err := h.client.List(ctx, &pairingv1.ListRequest{})
			return err
		},
		"Approve": func(ctx context.Context) error {
			_, err := h.client.Approve(ctx, &pairingv1.ApproveRequest{Channel: "local", Code: "x"})
			return err
		},
		"Reject": func(ctx context.Context) error {
			_, err := h.client.Reject(ctx, &pairingv1.RejectRequest{Channel: "local", Code: "x"})
			return err
		},
		"Revoke": func(ctx context.Context) error {
			_, err := h.client.Revoke(ctx, &pairingv1.RevokeRequest{Channel: "local", SenderId: "nobody"})
			return err
		},
		"IsAllowed": func(ctx context.Context) error {
			_, err := h.client.IsAllowed(ctx, &pairingv1.IsAllowedRequest{Channel: "local", SenderId: "m"})
			return err
		},
		"ListAllowed": func(ctx context.Context) error {
			_, err := h.client.ListAllowed(ctx, &pairingv1.ListAllowedRequest{})
			return err
		},
		"Import": func(ctx context.Context) error {
			_, err := h.client.Import(ctx, &pairingv1.ImportRequest{Channel: "local"})
			return err
		},
		"Watch": func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			st, err := h.client.Watch(ctx, &pairingv1.WatchRequest{})
			if err != nil {
				return err
			}
			_, err = st.Header() // the server sends headers once subscribed
			if err != nil {
				return err
			}
			if _, err := st.Recv(); err != nil && status.Code(err) != codes.DeadlineExceeded && status.Code(err) != codes.Canceled {
				return err
			}
			return nil
		},
	}
	require.Len(t, calls, len(Authz()))
	for _, id := range []string{auth.IDGateway, auth.IDCLI, auth.IDSecretsd, auth.IDSandboxd, auth.IDPairingd, auth.RoleClient, ""} {
		for name, call := range calls {
			err := call(as(id))
			allowed := id == auth.IDGateway || id == auth.IDCLI
			c := status.Code(err)
			if allowed {
				require.NotContains(t, []codes.Code{codes.PermissionDenied, codes.Unauthenticated}, c, "%s as %q: %v", name, id, err)
			} else {
				require.Contains(t, []codes.Code{codes.PermissionDenied, codes.Unauthenticated}, c, "%s as %q must be denied: %v", name, id, err)
			}
		}
	}
}

func TestPairingFlowOverGRPC(t *testing.T) {
	h := newHarness(t)
	ctx := as(auth.IDGateway)
	cli := as(auth.IDCLI)

	wctx, cancel := context.WithCancel(cli)
	defer cancel()
	watch, err := h.client.Watch(wctx, &pairingv1.WatchRequest{Channel: "telegram"})
	require.NoError(t, err)
	_, err = watch.Header()
	require.NoError(t, err)

	r, err := h.client.Request(ctx, &pairingv1.RequestRequest{Channel: "telegram", SenderId: "100", Meta: map[string]string{"username": "alice"}})
	require.NoError(t, err)
	require.True(t, r.GetCreated())
	require.True(t, r.GetResendAllowed())
	require.Len(t, r.GetCode(), 8)
	require.NotNil(t, r.GetExpiresAt())

	ev, err := watch.Recv()
	require.NoError(t, err)
	require.Equal(t, pairingv1.WatchResponse_KIND_REQUESTED, ev.GetKind())
	require.Equal(t, "100", ev.GetRequest().GetSenderId())

	again, err := h.client.Request(ctx, &pairingv1.RequestRequest{Channel: "telegram", SenderId: "100"})
	require.NoError(t, err)
	require.Equal(t, r.GetCode(), again.GetCode())
	require.False(t, again.GetResendAllowed())

	for _, id := range []string{"101", "102"} {
		_, err := h.client.Request(ctx, &pairingv1.RequestRequest{Channel: "telegram", SenderId: id})
		require.NoError(t, err)
		_, err = watch.Recv()
		require.NoError(t, err)
	}
	full, err := h.client.Request(ctx, &pairingv1.RequestRequest{Channel: "telegram", SenderId: "103"})
	require.NoError(t, err)
	require.True(t, full.GetQueueFull())
	ev, err = watch.Recv()
	require.NoError(t, err)
	require.Equal(t, pairingv1.WatchResponse_KIND_QUEUE_FULL, ev.GetKind())

	list, err := h.client.List(cli, &pairingv1.ListRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetRequests(), 3)
	require.Equal(t, []string{"telegram"}, list.GetFullChannels())

	ap, err := h.client.Approve(cli, &pairingv1.ApproveRequest{Channel: "telegram", Code: strings.ToLower(r.GetCode())})
	require.NoError(t, err)
	require.Equal(t, "100", ap.GetSenderId())
	require.Equal(t, "alice", ap.GetMeta()["username"])
	ev, err = watch.Recv()
	require.NoError(t, err)
	require.Equal(t, pairingv1.WatchResponse_KIND_APPROVED, ev.GetKind())

	ok, err := h.client.IsAllowed(ctx, &pairingv1.IsAllowedRequest{Channel: "telegram", SenderId: "100"})
	require.NoError(t, err)
	require.True(t, ok.GetAllowed())
	al, err := h.client.ListAllowed(cli, &pairingv1.ListAllowedRequest{Channel: "telegram"})
	require.NoError(t, err)
	require.Len(t, al.GetSenders(), 1)

	_, err = h.client.Revoke(cli, &pairingv1.RevokeRequest{Channel: "telegram", SenderId: "100"})
	require.NoError(t, err)
	ok, err = h.client.IsAllowed(ctx, &pairingv1.IsAllowedRequest{Channel: "telegram", SenderId: "100"})
	require.NoError(t, err)
	require.False(t, ok.GetAllowed())

	imp, err := h.client.Import(cli, &pairingv1.ImportRequest{Channel: "local", AllowFromJson: []byte(`{"version":1,"allowFrom":["alice","bob"]}`)})
	require.NoError(t, err)
	require.EqualValues(t, 2, imp.GetAllowedImported())
}

func TestErrorsOverGRPC(t *testing.T) {
	h := newHarness(t)
	gw := as(auth.IDGateway)
	r, err := h.client.Request(gw, &pairingv1.RequestRequest{Channel: "telegram", SenderId: "1"})
	require.NoError(t, err)
	wrong := "ZZZZZZZZ"
	if r.GetCode() == wrong {
		wrong = "YYYYYYYY"
	}

	tests := []struct {
		name string
		call func() error
		code codes.Code
		msg  string
	}{
		{"unknown channel", func() error {
			_, err := h.client.Request(gw, &pairingv1.RequestRequest{Channel: "Tele gram", SenderId: "1"})
			return err
		}, codes.InvalidArgument, "channel"},
		{"empty sender", func() error {
			_, err := h.client.Request(gw, &pairingv1.RequestRequest{Channel: "telegram"})
			return err
		}, codes.InvalidArgument, "sender_id"},
		{"oversized meta", func() error {
			_, err := h.client.Request(gw, &pairingv1.RequestRequest{Channel: "telegram", SenderId: "2", Meta: map[string]string{"n": strings.Repeat("x", 5000)}})
			return err
		}, codes.InvalidArgument, "meta"},
		{"malformed code", func() error {
			_, err := h.client.Approve(gw, &pairingv1.ApproveRequest{Channel: "telegram", Code: "12"})
			return err
		}, codes.InvalidArgument, "code"},
		{"wrong code", func() error {
			_, err := h.client.Approve(gw, &pairingv1.ApproveRequest{Channel: "telegram", Code: wrong})
			return err
		}, codes.NotFound, "no pending pairing request"},
		{"revoke unknown", func() error {
			_, err := h.client.Revoke(gw, &pairingv1.RevokeRequest{Channel: "telegram", SenderId: "9"})
			return err
		}, codes.NotFound, "not on the allowlist"},
		{"bad import", func() error {
			_, err := h.client.Import(gw, &pairingv1.ImportRequest{Channel: "telegram", PairingJson: []byte(`{"version":3}`)})
			return err
		}, codes.InvalidArgument, "telegram-pairing.json: version 3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			require.Equal(t, tc.code, status.Code(err), "%v", err)
			require.Contains(t, status.Convert(err).Message(), tc.msg)
		})
	}
	list, err := h.client.List(gw, &pairingv1.ListRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetRequests(), 1, "bad input stored nothing")

	// Lockout: the gateway's key locks after 10 misses, with a retry-after trailer;
	// the CLI's right code still works.
	for i := 0; i < 9; i++ {
		_, err := h.client.Approve(gw, &pairingv1.ApproveRequest{Channel: "telegram", Code: wrong})
		require.Equal(t, codes.NotFound, status.Code(err))
	}
	var trailer metadata.MD
	_, err = h.client.Approve(gw, &pairingv1.ApproveRequest{Channel: "telegram", Code: r.GetCode()}, grpc.Trailer(&trailer))
	require.Equal(t, codes.ResourceExhausted, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "retry after")
	require.NotEmpty(t, trailer.Get("retry-after"))
	ap, err := h.client.Approve(as(auth.IDCLI), &pairingv1.ApproveRequest{Channel: "telegram", Code: r.GetCode()})
	require.NoError(t, err)
	require.Equal(t, "1", ap.GetSenderId())
}
