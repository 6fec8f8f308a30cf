// Command gateway is moltbot's front door: token auth on every call,
// config owner, channel ingress and routing.
package main

import (
	"flag"
	"os"

	"github.com/moltbot/moltbot-secure/gateway/internal/app"
	"github.com/moltbot/moltbot-secure/services/server"
)

const name = "gateway"

// version is set with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	o := app.Options{Base: server.Base{Name: name}, Version: version}
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	o.Base.Flags(fs, "127.0.0.1:18789")
	fs.StringVar(&o.SecretsAddr, "secretsd-addr", env("MOLTBOT_SECRETSD_ADDR", "127.0.0.1:18790"), "secretsd address")
	fs.StringVar(&o.PairingAddr, "pairingd-addr", env("MOLTBOT_PAIRINGD_ADDR", "127.0.0.1:18791"), "pairingd address")
	fs.StringVar(&o.SandboxAddr, "sandboxd-addr", env("MOLTBOT_SANDBOXD_ADDR", "127.0.0.1:18792"), "sandboxd address")
	fs.StringVar(&o.UIAddr, "ui-addr", env("MOLTBOT_UI_ADDR", "127.0.0.1:18793"), "Control UI HTTP listen address (\"off\": not served)")
	fs.StringVar(&o.UIURL, "ui-url", env("MOLTBOT_UI_URL", ""), "the Control UI's URL as a browser reaches it (default: http://127.0.0.1:<ui-addr port>/)")
	server.Main(&o.Base, fs, func() error {
		ctx, cancel := server.SignalContext()
		defer cancel()
		return app.Run(ctx, o)
	})
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
