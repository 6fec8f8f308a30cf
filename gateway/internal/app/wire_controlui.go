package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/moltbot/moltbot-secure/gateway/internal/api"
	"github.com/moltbot/moltbot-secure/gateway/internal/auditrun"
	"github.com/moltbot/moltbot-secure/gateway/internal/devices"
	"github.com/moltbot/moltbot-secure/gateway/internal/webui"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/seclog"
)

// wireDevices opens the Control UI's device store (state/devices.json) and
// its session table, for the devices RPCs and the UI.
func wireDevices(_ context.Context, w *Wiring) error {
	st, err := devices.Open(filepath.Join(w.StateDir, devices.File))
	if err != nil {
		return err
	}
	d := &w.API.Devices
	d.Store, d.Sessions = st, devices.NewSessions(st)
	if w.SecLog != nil {
		d.Log = w.SecLog
	}
	d.DeviceAuthDisabled = func() bool { return uiSettings(w).DisableDeviceAuth }
	if uiServed(w) {
		d.URL = uiURL(w.Opts.UIAddr, w.Opts.UIURL)
	}
	return nil
}

// uiProbe is audit --deep's view of the UI (nil when not served); the
// probe's throwaway device is dropped from the store afterwards.
func uiProbe(w *Wiring) *auditrun.UIProbe {
	if !uiServed(w) || w.API.Devices.Store == nil {
		return nil
	}
	st := w.API.Devices.Store
	return &auditrun.UIProbe{
		Addr:    dialable(w.Opts.UIAddr),
		Token:   func() string { t, _ := w.CurrentToken(); return t },
		Allowed: func() []string { return uiSettings(w).AllowedOrigins },
		Drop:    func(fp string) { _, _ = st.Reject(fp) },
	}
}

// uiServed: the listener flag is set and gateway.controlUi.enabled is not
// false (read at start; a reload does not start or stop the listener).
func uiServed(w *Wiring) bool {
	if w.Opts.UIAddr == "" || w.Opts.UIAddr == "off" {
		return false
	}
	return w.Config == nil || w.Config.Current() == nil || w.Config.Current().View.Gateway.ControlUI.Enabled
}

// uiURL is the URL `moltbot ui` prints: the flag, else loopback at the
// listener's port (compose publishes the port on 127.0.0.1).
func uiURL(addr, flag string) string {
	if flag != "" {
		return flag
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return "http://127.0.0.1:" + port + "/"
}

// uiSettings reads gateway.controlUi from the running config (a reload
// changes them).
func uiSettings(w *Wiring) webui.Settings {
	if w.Config == nil || w.Config.Current() == nil {
		return webui.Settings{}
	}
	c := w.Config.Current().View.Gateway.ControlUI
	return webui.Settings{AllowedOrigins: c.AllowedOrigins, AllowInsecureAuth: c.AllowInsecureAuth, DisableDeviceAuth: c.DangerouslyDisableDeviceAuth}
}

// serveControlUI starts the UI's listener over the same service
// implementations and table as the client port (svc and w.Register).
func serveControlUI(ctx context.Context, w *Wiring, svc *api.Service) error {
	if !uiServed(w) {
		return nil
	}
	s := uiSettings(w)
	if s.AllowInsecureAuth {
		w.Logger.Warn("DEPRECATED gateway.controlUi.allowInsecureAuth is true: the Control UI accepts the bare gateway token from non-secure origins; remove it (`moltbot security audit --fix`)")
	}
	if s.DisableDeviceAuth {
		w.Logger.Warn("DEPRECATED gateway.controlUi.dangerouslyDisableDeviceAuth is true: Control UI devices get in as the owner without approval; remove it (`moltbot security audit --fix`)")
	}
	services := &webui.Services{}
	api.RegisterService(services, svc)
	for _, reg := range w.Register {
		reg(services)
	}
	var onAuth func(context.Context, auth.Event)
	if w.SecLog != nil {
		onAuth = seclog.AuthRecorder(w.SecLog)
	}
	var rec seclog.Recorder
	if w.SecLog != nil {
		rec = w.SecLog
	}
	ui, err := webui.New(webui.Config{
		Services: services,
		Rules:    webui.Rules{Table: api.Authz(), NotOverHTTP: api.NotOverHTTP, Guard: w.GatewayAuth.StreamGuard()},
		Devices:  w.API.Devices.Store,
		Sessions: w.API.Devices.Sessions,
		VerifyToken: func(tok string) (uint64, bool) {
			_, gen, ok := w.GatewayAuth.Verify("", tok)
			return gen, ok
		},
		Settings: func() webui.Settings { return uiSettings(w) },
		Limiter:  auth.NewLimiter(),
		OnAuth:   onAuth,
		Log:      rec,
		Logger:   w.Logger.Named("ui"),
		Version:  w.Opts.Version,
	})
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", w.Opts.UIAddr)
	if err != nil {
		return fmt.Errorf("--ui-addr %s: %w (another gateway running? set MOLTBOT_UI_ADDR or --ui-addr off)", w.Opts.UIAddr, err)
	}
	srv := &http.Server{Handler: ui, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			w.Logger.Error("control UI stopped", "error", err.Error())
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	w.Logger.Info("control UI", "addr", lis.Addr().String(), "url", w.API.Devices.URL)
	return nil
}
