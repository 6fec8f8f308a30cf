package config

import (
	"fmt"
	"net/url"
	"strings"
)

// NormalizeOrigin parses a gateway.controlUi.allowedOrigins entry (or a
// browser's Origin header) into scheme://host[:port], lower case; the error
// says what is wrong. It is the one origin rule: validation and the Control
// UI's Origin check both use it.
func NormalizeOrigin(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("origin %q: want scheme://host[:port] with scheme http or https and no path", s)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

func normalizeOrigins(in []string) []string {
	var out []string
	for _, s := range in {
		if n, err := NormalizeOrigin(s); err == nil {
			out = append(out, n)
		}
	}
	return out
}
