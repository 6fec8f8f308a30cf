package telegram

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// replyServer answers every Bot API call with the current status and body.
type replyServer struct {
	mu     sync.Mutex
	status int
	body   []byte
}

func (s *replyServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	status, body := s.status, s.body
	s.mu.Unlock()
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

const fuzzBotToken = "123456:fuzz-bot-token-AAAAAAAAAAAAAAAAAAAA"

// FuzzBotReplies feeds arbitrary HTTP replies to the calls beyond
// getUpdates: getMe (Probe) and sendMessage (Send), ok or error envelopes,
// any status. No panic, no hang past the deadline, the bot token never in an
// error, and an ok=true reply with a message result is a success.
func FuzzBotReplies(f *testing.F) {
	f.Add(uint16(200), []byte(`{"ok":true,"result":{"id":1,"is_bot":true,"first_name":"b","username":"b_bot"}}`))
	f.Add(uint16(200), []byte(`{"ok":true,"result":{"message_id":5,"chat":{"id":42,"type":"private"},"date":1,"text":"hi"}}`))
	f.Add(uint16(401), []byte(`{"ok":false,"error_code":401,"description":"Unauthorized"}`))
	f.Add(uint16(429), []byte(`{"ok":false,"error_code":429,"description":"Too Many Requests","parameters":{"retry_after":3}}`))
	f.Add(uint16(400), []byte(`{"ok":false,"error_code":400,"description":"Bad Request: chat not found","parameters":{"migrate_to_chat_id":-100}}`))
	f.Add(uint16(502), []byte(`<html>bad gateway</html>`))
	f.Add(uint16(200), []byte(`{"ok":true,"result":"`+fuzzBotToken+`"}`))
	f.Add(uint16(404), []byte(`{"ok":false,"description":"`+fuzzBotToken+`"}`))
	f.Add(uint16(400), []byte(`{"ok":false,"error_code":400,"description":"Bad\nRequest: \u001b[31m\u0000 fake log line"}`))
	srv := &replyServer{}
	ts := httptest.NewServer(srv)
	f.Cleanup(ts.Close)
	bot, err := New(Config{Token: fuzzBotToken, BaseURL: ts.URL, HTTPClient: ts.Client(), MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, status uint16, body []byte) {
		code := 200 + int(status)%400 // 200..599
		srv.mu.Lock()
		srv.status, srv.body = code, body
		srv.mu.Unlock()
		for _, call := range []struct {
			name string
			run  func(context.Context) error
		}{
			{"getMe", bot.Probe},
			{"sendMessage", func(ctx context.Context) error { return bot.Send(ctx, "42", "hello") }},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			start := time.Now()
			err := call.run(ctx)
			cancel()
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("%s took %v", call.name, d)
			}
			// Never the token, even when the reply echoes it, and never a
			// control character from the server's text.
			if err != nil && strings.Contains(err.Error(), fuzzBotToken) {
				t.Fatalf("%s: the bot token leaked into the error: %v", call.name, err)
			}
			if err != nil && strings.ContainsFunc(err.Error(), func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Fatalf("%s: a control character reached the error: %q", call.name, err)
			}
		}
	})
}
