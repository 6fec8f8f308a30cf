// Package client dials moltbot services: TLS 1.3 and a bearer token on
// every call. The token credentials refuse to travel over plaintext.
package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Token is per-RPC bearer credentials.
type Token string

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (t Token) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: the
// token must never cross a plaintext connection.
func (Token) RequireTransportSecurity() bool { return true }

// Dial returns a lazily connecting client for addr ("host:port").
// token may be empty (health checks only).
func Dial(addr string, tlsCfg *tls.Config, token string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	if err := CheckAddr(addr); err != nil {
		return nil, err
	}
	o := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg))}
	if token != "" {
		o = append(o, grpc.WithPerRPCCredentials(Token(token)))
	}
	o = append(o, opts...)
	cc, err := grpc.NewClient("passthrough:///"+addr, o...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return cc, nil
}

// CheckAddr validates a host:port address with a clear message.
func CheckAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return fmt.Errorf("address %q is not host:port (example: 127.0.0.1:18789)", addr)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("address %q: invalid host", addr)
	}
	return nil
}

// ReadToken reads a token file, trimming whitespace.
func ReadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read token %s: %w (run `moltbot certs init`)", path, err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("token file %s is empty (run `moltbot certs init --force`)", path)
	}
	return t, nil
}
