package testharness

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckCLIOutput(t *testing.T) {
	require.NoError(t, CheckCLIOutput("moltbot: the stack is not running (nothing answers at 127.0.0.1:18789)\n  fix: make up\n"))
	require.Error(t, CheckCLIOutput("moltbot: rpc error: code = NotFound desc = no pending pairing request"))
}
