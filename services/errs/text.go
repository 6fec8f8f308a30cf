package errs

import (
	"regexp"
	"strings"

	"google.golang.org/grpc/status"
)

// rpcWrapper is grpc-go's own text around a status message. People never
// see it: Text and StripRPC remove it.
var rpcWrapper = regexp.MustCompile(`rpc error: code = [A-Za-z]+ desc = `)

// connectMarkers are grpc-go's words for "no connection could be made"
// (refused, no route, name not found), as opposed to a server's sentence.
var connectMarkers = []string{"connection error", "transport: ", "Error while dialing", "connection refused", "no such host", "server preface"}

// StripRPC removes grpc-go's wrapper wherever wrapping left it in s.
func StripRPC(s string) string { return rpcWrapper.ReplaceAllString(s, "") }

// IsConnectFailure reports whether a status message is grpc-go's own
// account of a failed connection rather than the server's answer.
func IsConnectFailure(msg string) bool {
	for _, m := range connectMarkers {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

// Text is err's text for a person: a status error's own message without
// the wrapper, and a failed connection as "not reachable: <cause>" (the
// dial's cause, e.g. "dial tcp: lookup pairingd ...: no such host").
func Text(err error) string {
	if err == nil {
		return ""
	}
	s, ok := status.FromError(err)
	if !ok {
		return StripRPC(err.Error())
	}
	msg := s.Message()
	if IsConnectFailure(msg) {
		cause := msg
		if i := strings.LastIndex(cause, "Error while dialing: "); i >= 0 {
			cause = cause[i+len("Error while dialing: "):]
		} else if i := strings.LastIndex(cause, "transport: "); i >= 0 {
			cause = cause[i+len("transport: "):]
		}
		return "not reachable: " + strings.TrimRight(cause, `"`)
	}
	return StripRPC(err.Error())
}
