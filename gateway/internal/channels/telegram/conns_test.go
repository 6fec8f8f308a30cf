package telegram

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/gateway/internal/channels/telegram/telegramtest"
	"github.com/moltbot/moltbot-secure/gateway/internal/conntest"
)

// Replies sent from many workers at once reuse their connections: five
// rounds of 16 concurrent sendMessage calls open at most 32 connections
// (Go's default transport keeps 2 idle per host and opens about 70).
func TestConcurrentRepliesReuseConnections(t *testing.T) {
	const token = "123456:conns-test-token-abcdefghijklmnopqrstuvwx"
	ts, opened := conntest.Server(t, telegramtest.NewHandler(token))
	bot, err := New(Config{Token: token, BaseURL: ts.URL})
	require.NoError(t, err)
	const workers = 16
	for round := range 5 {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				require.NoError(t, bot.Send(context.Background(), strconv.Itoa(1000+w), "reply "+strconv.Itoa(round)))
			}()
		}
		wg.Wait()
	}
	// A connection is back in the idle pool a moment after its reply is
	// read, so a caller of the next round may still dial: allow one extra
	// per worker. Without reuse the 80 replies open about 70.
	require.LessOrEqual(t, opened.Load(), int64(2*workers), "connections opened for %d replies", 5*workers)
}
