// Package webui is the gateway's Control UI: an HTTP listener serving an
// embedded page (html/template + plain ES modules, no third-party asset)
// and a thin JSON adapter over the client port's gRPC service
// implementations, called in process and checked against the same method x
// role table (api.Authz). Who calls is a device session (an Ed25519 key the
// owner approved, package devices) or the bare gateway token (the client
// role). Only the page, its assets and the login handshake need no
// credential; no cookie authenticates and no credential is ever in a URL.
package webui

import (
	"context"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/moltbot/moltbot-secure/gateway/internal/devices"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/seclog"
)

//go:embed static
var staticFS embed.FS

//go:embed index.html.tmpl
var indexTmpl string

// Headers of the adapter.
const (
	SessionHeader = "X-Moltbot-Session"
	// notifyHeader is the one request header passed to handlers (the
	// pairing proxy's approve --no-notify); nothing else crosses, least of
	// all x-moltbot-on-behalf-of.
	notifyHeader = "x-moltbot-notify"
)

// CSP is the page's Content-Security-Policy: its own scripts, styles and
// API only; no inline script or style, no frame, no third party.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Settings are gateway.controlUi's current values (a reload changes them).
type Settings struct {
	// AllowedOrigins are normalised origins (config.NormalizeOrigin) of HTTPS
	// proxies in front of the UI, e.g. https://host.tailnet.ts.net.
	AllowedOrigins []string
	// AllowInsecureAuth (deprecated): the token alone logs in from a
	// non-secure origin (plain http on a non-loopback name).
	AllowInsecureAuth bool
	// DisableDeviceAuth (deprecated, dangerouslyDisableDeviceAuth): a
	// registered device gets in without the owner's approval, as the owner.
	DisableDeviceAuth bool
}

// Config holds the server's dependencies.
type Config struct {
	Services *Services
	Rules    Rules
	Devices  *devices.Store
	Sessions *devices.Sessions
	// VerifyToken checks the gateway token (constant time) and returns
	// its generation.
	VerifyToken func(token string) (gen uint64, ok bool)
	Settings    func() Settings
	Limiter     *auth.Limiter
	// OnAuth records authentication events (seclog.AuthRecorder); nil: none.
	OnAuth func(ctx context.Context, ev auth.Event)
	// Log records device registrations; nil: none.
	Log     seclog.Recorder
	Logger  hclog.Logger
	Version string
}

// Server is the Control UI's HTTP handler.
type Server struct {
	cfg   Config
	index *template.Template
	mux   *http.ServeMux
}

// New builds the handler.
func New(cfg Config) (*Server, error) {
	if cfg.Services == nil || cfg.Devices == nil || cfg.Sessions == nil || cfg.VerifyToken == nil || cfg.Settings == nil ||
		cfg.Rules.Table == nil || cfg.Rules.NotOverHTTP == nil {
		return nil, errors.New("webui: Services, Devices, Sessions, VerifyToken, Settings and Rules are required")
	}
	if cfg.Limiter == nil {
		cfg.Limiter = auth.NewLimiter()
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	t, err := template.New("index").Parse(indexTmpl)
	if err != nil {
		return nil, fmt.Errorf("webui: index template: %w", err)
	}
	s := &Server{cfg: cfg, index: t, mux: http.NewServeMux()}
	sub, _ := fs.Sub(staticFS, "static")
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(sub)))
	s.mux.HandleFunc("GET /{$}", s.serveIndex)
	s.mux.HandleFunc("POST /auth/register", s.register)
	s.mux.HandleFunc("POST /auth/challenge", s.challenge)
	s.mux.HandleFunc("POST /auth/session", s.session)
	s.mux.HandleFunc("POST /api/{service}/{method}", s.api)
	return s, nil
}

type siteKey struct{}

// ServeHTTP checks Host and Origin, sets the security headers and routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
	site, err := checkSite(r, s.cfg.Settings().AllowedOrigins)
	if err != nil {
		writeError(w, http.StatusForbidden, "forbidden", err.Error())
		return
	}
	if r.Method == http.MethodPost {
		// Browsers send Origin on every POST; without it (or without JSON)
		// this is no page of ours.
		if r.Header.Get("Origin") == "" || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			writeError(w, http.StatusForbidden, "forbidden", "POST needs an Origin header and Content-Type: application/json")
			return
		}
		h.Set("Cache-Control", "no-store")
	}
	s.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), siteKey{}, site)))
}

func siteOf(r *http.Request) Site { return r.Context().Value(siteKey{}).(Site) }

func (s *Server) serveIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_ = s.index.Execute(w, struct{ Version string }{s.cfg.Version})
}

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, httpCode int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpCode)
	_ = json.NewEncoder(w).Encode(apiError{Code: code, Message: msg})
}

func writeStatus(w http.ResponseWriter, err error) {
	st := status.Convert(err)
	writeError(w, httpStatus(err), st.Code().String(), st.Message())
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func readJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidArgument", "request body: "+err.Error())
		return false
	}
	return true
}

func remoteIP(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// limitKey: the address is used to slow guessing, never to trust.
func limitKey(r *http.Request) string { return auth.LimitKey(remoteIP(r), "web") }

func (s *Server) event(r *http.Request, kind, id string) {
	if s.cfg.OnAuth != nil {
		s.cfg.OnAuth(r.Context(), auth.Event{Kind: kind, Addr: remoteIP(r), CertID: "web", ID: id, Method: r.URL.Path})
	}
}

// failed counts a failed credential and answers 401 (or 429 once locked).
func (s *Server) failed(w http.ResponseWriter, r *http.Request, msg string) {
	s.event(r, "auth.failure", "")
	if wait, locked := s.cfg.Limiter.Fail(limitKey(r)); locked {
		s.event(r, "auth.lockout", "")
		w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds()+0.999)))
		writeError(w, http.StatusTooManyRequests, "ResourceExhausted", "too many failed attempts from this address")
		return
	}
	writeError(w, http.StatusUnauthorized, "Unauthenticated", msg)
}

func (s *Server) blocked(w http.ResponseWriter, r *http.Request) bool {
	if wait, b := s.cfg.Limiter.Blocked(limitKey(r)); b {
		w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds()+0.999)))
		writeError(w, http.StatusTooManyRequests, "ResourceExhausted", "too many failed attempts from this address")
		return true
	}
	return false
}

type registerReq struct {
	Token     string `json:"token"`
	PublicKey string `json:"publicKey"` // base64 of the raw 32-byte Ed25519 key
	Name      string `json:"name"`
}

type deviceResp struct {
	Fingerprint string `json:"fingerprint"`
	State       string `json:"state"`
	Role        string `json:"role,omitempty"`
}

// register adds a pending device; it takes the gateway token, so only a
// token holder fills the (bounded) queue.
func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	site := siteOf(r)
	if !site.Secure {
		writeError(w, http.StatusForbidden, "PermissionDenied", site.Origin+" is not a secure origin: device identity needs https (an HTTPS proxy listed in gateway.controlUi.allowedOrigins) or http://127.0.0.1")
		return
	}
	var req registerReq
	if s.blocked(w, r) || !readJSON(w, r, 16<<10, &req) {
		return
	}
	if _, ok := s.cfg.VerifyToken(req.Token); !ok {
		s.failed(w, r, "invalid gateway token")
		return
	}
	pub, err := base64.StdEncoding.DecodeString(req.PublicKey)
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidArgument", "publicKey: not base64")
		return
	}
	d, err := s.cfg.Devices.Register(pub, req.Name, site.Origin)
	switch {
	case errors.Is(err, devices.ErrTooMany):
		writeError(w, http.StatusTooManyRequests, "ResourceExhausted", err.Error())
		return
	case errors.Is(err, devices.ErrBadKey):
		writeError(w, http.StatusBadRequest, "InvalidArgument", err.Error())
		return
	case err != nil:
		s.cfg.Logger.Error("device register", "error", err.Error())
		writeError(w, http.StatusInternalServerError, "Internal", "internal error")
		return
	}
	if d.State == devices.StatePending {
		ctx := auth.WithCaller(r.Context(), auth.Caller{ID: auth.RoleClient, CertID: "web", Addr: remoteIP(r)})
		if err := seclog.Put(s.cfg.Log, seclog.Decision(ctx, "device.register", d.Fingerprint, map[string]string{"origin": site.Origin, "name": d.Name})); err != nil {
			s.cfg.Logger.Error("security log: event not recorded", "kind", "device.register", "error", err.Error())
		}
	}
	writeJSON(w, deviceResp{Fingerprint: d.Fingerprint, State: d.State, Role: d.Role})
}

func (s *Server) challenge(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Fingerprint string `json:"fingerprint"`
	}
	if s.blocked(w, r) || !readJSON(w, r, 4<<10, &req) {
		return
	}
	n, err := s.cfg.Sessions.Challenge(req.Fingerprint, siteOf(r).Origin)
	if errors.Is(err, devices.ErrNotFound) {
		writeError(w, http.StatusNotFound, "NotFound", "unknown device: it was rejected or revoked; log in with the token to register again")
		return
	} else if err != nil {
		writeError(w, http.StatusTooManyRequests, "ResourceExhausted", err.Error())
		return
	}
	writeJSON(w, map[string]string{"nonce": n, "origin": siteOf(r).Origin})
}

type sessionReq struct {
	Fingerprint string `json:"fingerprint"`
	Nonce       string `json:"nonce"`
	Signature   string `json:"signature"` // base64
}

// session opens a device session: the device signs the nonce bound to the
// origin; the credential goes back in the body, for the page's memory.
func (s *Server) session(w http.ResponseWriter, r *http.Request) {
	var req sessionReq
	if s.blocked(w, r) || !readJSON(w, r, 4<<10, &req) {
		return
	}
	sig, err := base64.StdEncoding.DecodeString(req.Signature)
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidArgument", "signature: not base64")
		return
	}
	site := siteOf(r)
	tok, sess, err := s.cfg.Sessions.Open(req.Fingerprint, site.Origin, req.Nonce, sig, s.cfg.Settings().DisableDeviceAuth)
	switch {
	case errors.Is(err, devices.ErrPending):
		writeError(w, http.StatusForbidden, "pending", err.Error())
		return
	case errors.Is(err, devices.ErrNotFound):
		writeError(w, http.StatusNotFound, "NotFound", "unknown device: it was rejected or revoked; log in with the token to register again")
		return
	case err != nil:
		s.failed(w, r, err.Error())
		return
	}
	s.event(r, "auth.success", "device:"+req.Fingerprint)
	writeJSON(w, map[string]any{"session": tok, "role": sess.Role, "fingerprint": sess.Device, "expiresAt": sess.Expires.UnixMilli()})
}

// caller authenticates an API request: a device session, else the gateway
// token (the client role). done ends with the session (revocation).
func (s *Server) caller(w http.ResponseWriter, r *http.Request) (auth.Caller, context.Context, bool) {
	site := siteOf(r)
	if tok := r.Header.Get(SessionHeader); tok != "" {
		sess, ok := s.cfg.Sessions.Lookup(tok, site.Origin)
		if !ok {
			writeError(w, http.StatusUnauthorized, "Unauthenticated", "session expired or revoked: log in again")
			return auth.Caller{}, nil, false
		}
		if sess.Unapproved && !s.cfg.Settings().DisableDeviceAuth {
			// Let in only by dangerouslyDisableDeviceAuth, which is gone now.
			writeError(w, http.StatusUnauthorized, "Unauthenticated", "session ended: device approval is required again and this device is pending")
			return auth.Caller{}, nil, false
		}
		return auth.Caller{ID: sess.Role, CertID: "device:" + sess.Device, Addr: remoteIP(r)}, sess.Ctx, true
	}
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || bearer == "" {
		writeError(w, http.StatusUnauthorized, "Unauthenticated", errNoCredential.Error())
		return auth.Caller{}, nil, false
	}
	if !site.Secure && !s.cfg.Settings().AllowInsecureAuth {
		writeError(w, http.StatusForbidden, "PermissionDenied", site.Origin+" is not a secure origin: the token is refused here (use https or http://127.0.0.1)")
		return auth.Caller{}, nil, false
	}
	if s.blocked(w, r) {
		return auth.Caller{}, nil, false
	}
	gen, ok := s.cfg.VerifyToken(bearer)
	if !ok {
		s.failed(w, r, "invalid gateway token")
		return auth.Caller{}, nil, false
	}
	return auth.Caller{ID: auth.RoleClient, CertID: "web", Addr: remoteIP(r), TokenGen: gen}, context.Background(), true
}

// api is the adapter: POST /api/<service>/<method> with the request as
// proto JSON; unary answers JSON, server streams answer Server-Sent Events
// (the page reads them with fetch, so the credential stays in a header).
func (s *Server) api(w http.ResponseWriter, r *http.Request) {
	c, life, ok := s.caller(w, r)
	if !ok {
		return
	}
	m := "/" + r.PathValue("service") + "/" + r.PathValue("method")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "InvalidArgument", "request body over 4 MiB")
		return
	}
	ctx, cancel := context.WithCancel(auth.WithCaller(r.Context(), c))
	defer cancel()
	stop := context.AfterFunc(life, cancel)
	defer stop()
	if v := r.Header.Get(notifyHeader); v != "" {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(notifyHeader, v))
	}
	if !s.cfg.Services.IsStream(m) {
		msg, hdr, err := s.cfg.Services.Unary(ctx, s.cfg.Rules, m, body)
		for k, v := range hdr {
			if strings.HasPrefix(k, "x-moltbot-") && len(v) > 0 {
				w.Header().Set(k, v[0])
			}
		}
		if err != nil {
			writeStatus(w, err)
			return
		}
		b, err := Marshal.Marshal(msg)
		if err != nil {
			writeStatus(w, status.Error(codes.Internal, "internal error"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
		return
	}
	s.stream(ctx, w, m, body)
}

// stream serves a server stream as text/event-stream: "message" events,
// then one "end" event with the status (or the connection just ends when
// the session is revoked).
func (s *Server) stream(ctx context.Context, w http.ResponseWriter, m string, body []byte) {
	rc := http.NewResponseController(w)
	started := false
	start := func() {
		if started {
			return
		}
		started = true
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, ": open\n\n")
		_ = rc.Flush()
	}
	// Open the stream at once (so the page knows it is live) unless the
	// table refuses it: then answer with the plain HTTP error.
	if err := s.cfg.Rules.check(ctx, m); err != nil {
		writeStatus(w, err)
		return
	}
	start()
	_ = rc.SetWriteDeadline(time.Time{})
	err := s.cfg.Services.Stream(ctx, s.cfg.Rules, m, body, func(msg proto.Message) error {
		b, err := Marshal.Marshal(msg)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "event: message\ndata: %s\n\n", b); err != nil {
			return err
		}
		return rc.Flush()
	})
	if ctx.Err() != nil && err == nil {
		err = status.Error(codes.Unauthenticated, "stream ended: session revoked or expired")
	}
	st := status.Convert(err)
	b, _ := json.Marshal(apiError{Code: st.Code().String(), Message: st.Message()})
	_, _ = fmt.Fprintf(w, "event: end\ndata: %s\n\n", b)
	_ = rc.Flush()
}
