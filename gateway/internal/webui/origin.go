package webui

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/moltbot/moltbot-secure/services/config"
)

// Where a request comes from is judged by its Host and Origin headers,
// never by its source address: Docker 20.10 lets LAN hosts reach ports
// published on 127.0.0.1, so a loopback source proves nothing.

// Site is the origin a request is served for.
type Site struct {
	// Origin is scheme://host[:port], what the browser puts in Origin.
	Origin string
	// Secure is true for a secure context: https, or http on a loopback
	// name (where WebCrypto works and the token does not cross a network).
	Secure bool
}

var (
	errHost   = errors.New("Host is neither loopback nor in gateway.controlUi.allowedOrigins (DNS rebinding?)")
	errOrigin = errors.New("Origin is neither this loopback page nor in gateway.controlUi.allowedOrigins (cross-site request?)")
)

// loopbackName says whether host (no port) names this machine's loopback.
func loopbackName(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return ip != nil && ip.IsLoopback()
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// checkSite returns the site r is served for, or why it is refused:
// the Host must be a loopback name or an allowed origin's host; an Origin,
// when sent, must be the loopback page itself or an allowed origin. A
// request without Origin (a navigation, an asset) is the site of its Host.
func checkSite(r *http.Request, allowed []string) (Site, error) {
	host := strings.ToLower(r.Host)
	var hostSite string
	for _, a := range allowed {
		if u, err := url.Parse(a); err == nil && strings.EqualFold(u.Host, host) {
			hostSite = a
		}
	}
	loop := loopbackName(hostOnly(host))
	if !loop && hostSite == "" {
		return Site{}, errHost
	}
	o := r.Header.Get("Origin")
	if o == "" {
		if hostSite != "" {
			return Site{Origin: hostSite, Secure: strings.HasPrefix(hostSite, "https://")}, nil
		}
		return Site{Origin: "http://" + host, Secure: true}, nil
	}
	norm, err := config.NormalizeOrigin(o)
	if err != nil {
		return Site{}, errOrigin
	}
	for _, a := range allowed {
		if norm == a {
			u, _ := url.Parse(norm)
			return Site{Origin: norm, Secure: u.Scheme == "https" || loopbackName(u.Hostname())}, nil
		}
	}
	// The loopback page itself: same host as the request, on a loopback name.
	if loop && norm == "http://"+host {
		return Site{Origin: norm, Secure: true}, nil
	}
	return Site{}, errOrigin
}
