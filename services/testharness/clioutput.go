package testharness

import (
	"fmt"
	"strings"
)

// RPCErrorText is gRPC's own wrapper ("rpc error: code = ... desc = ...").
// The CLI turns every status into a plain sentence, so no output of it may
// carry this text (issue 14).
const RPCErrorText = "rpc error:"

// CheckCLIOutput fails CLI output that shows gRPC's raw text. Every helper
// that runs the CLI for a test calls it, so any error path the tests reach
// is checked.
func CheckCLIOutput(out string) error {
	if i := strings.Index(out, RPCErrorText); i >= 0 {
		return fmt.Errorf("the CLI showed raw gRPC text %q in its output:\n%s", RPCErrorText, out)
	}
	return nil
}
