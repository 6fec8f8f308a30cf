package telegram

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/gateway/internal/channels"
	"github.com/moltbot/moltbot-secure/gateway/internal/channels/telegram/telegramtest"
	"github.com/moltbot/moltbot-secure/services/textsafe"
)

const token = "123456:TEST-secret-token_value"

type sink struct {
	mu  sync.Mutex
	got []channels.Inbound
	ch  chan struct{}
}

func newSink() *sink { return &sink{ch: make(chan struct{}, 100)} }

func (b *sink) deliver(_ context.Context, in channels.Inbound, ack channels.Ack) {
	if ack != nil {
		defer ack(true)
	}
	b.mu.Lock()
	b.got = append(b.got, in)
	b.mu.Unlock()
	b.ch <- struct{}{}
}

func (b *sink) wait(t *testing.T, n int) []channels.Inbound {
	t.Helper()
	for {
		b.mu.Lock()
		if len(b.got) >= n {
			out := append([]channels.Inbound(nil), b.got...)
			b.mu.Unlock()
			return out
		}
		b.mu.Unlock()
		select {
		case <-b.ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("timed out waiting for %d messages", n)
		}
	}
}

type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) logf(f string, a ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(f, a...))
	l.mu.Unlock()
}

func (l *logs) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func start(t *testing.T, cfg Config) (*Bot, *sink, *logs) {
	t.Helper()
	lg := &logs{}
	if cfg.Token == "" {
		cfg.Token = token
	}
	cfg.Logf = lg.logf
	if cfg.PollTimeout == 0 {
		cfg.PollTimeout = time.Second
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 20 * time.Millisecond
	}
	bot, err := New(cfg)
	require.NoError(t, err)
	box := newSink()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bot.Start(ctx, box.deliver) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("Start did not return after cancel")
		}
	})
	return bot, box, lg
}

func TestReceiveAndReply(t *testing.T) {
	fake := telegramtest.NewServer(token)
	defer fake.Close()
	bot, box, _ := start(t, Config{BaseURL: fake.URL()})

	fake.SendDM(42, "alice", "hello")
	// Ignored: an edit, a sticker without text, a bot, a channel post.
	_, err := fake.AddUpdate([]byte(`{"edited_message":{"message_id":9,"from":{"id":42,"is_bot":false,"first_name":"A"},"chat":{"id":42,"type":"private"},"date":1,"text":"edited"}}`))
	require.NoError(t, err)
	_, err = fake.AddUpdate([]byte(`{"message":{"message_id":10,"from":{"id":42,"is_bot":false,"first_name":"A"},"chat":{"id":42,"type":"private"},"date":1,"sticker":{"file_id":"x"}}}`))
	require.NoError(t, err)
	_, err = fake.AddUpdate([]byte(`{"message":{"message_id":11,"from":{"id":7,"is_bot":true,"first_name":"B"},"chat":{"id":7,"type":"private"},"date":1,"text":"beep"}}`))
	require.NoError(t, err)
	_, err = fake.AddUpdate([]byte(`{"channel_post":{"message_id":12,"chat":{"id":-1001,"type":"channel"},"date":1,"text":"news"}}`))
	require.NoError(t, err)
	fake.SendGroup(-100200, 43, "bob", "hi all")

	got := box.wait(t, 2)
	require.Equal(t, channels.Inbound{
		Channel: "telegram", SenderID: "42", ChatID: "42", Text: "hello", MessageID: got[0].MessageID,
		Meta: map[string]string{"username": "alice", "name": "User42"},
	}, got[0])
	require.True(t, got[0].IsDM())
	require.Equal(t, "43", got[1].SenderID)
	require.Equal(t, "-100200", got[1].ChatID)
	require.Equal(t, "-100200", got[1].GroupID)
	require.Equal(t, "hi all", got[1].Text)

	connected, err := bot.Status()
	require.True(t, connected)
	require.NoError(t, err)

	require.NoError(t, bot.Send(context.Background(), "42", "your code:\nABCD2345"))
	sent := fake.Sent()
	require.Len(t, sent, 1)
	require.Equal(t, "42", sent[0].ChatID)
	require.Equal(t, "your code:\nABCD2345", sent[0].Text)

	// No update is delivered twice: the offset confirmed them.
	fake.SendDM(44, "", "third")
	got = box.wait(t, 3)
	require.Equal(t, "third", got[2].Text)
	time.Sleep(50 * time.Millisecond)
	box.mu.Lock()
	require.Len(t, box.got, 3)
	box.mu.Unlock()
}

func TestRetryAfterAndBackoff(t *testing.T) {
	fake := telegramtest.NewServer(token)
	defer fake.Close()
	fake.FailNext(telegramtest.Failure{Method: "getUpdates", ErrorCode: 429, Description: "Too Many Requests: retry after 1", RetryAfter: 1})
	fake.FailNext(telegramtest.Failure{Method: "sendMessage", ErrorCode: 429, Description: "Too Many Requests: retry after 1", RetryAfter: 1})
	t0 := time.Now()
	bot, box, lg := start(t, Config{BaseURL: fake.URL()})
	fake.SendDM(42, "", "hi")
	box.wait(t, 1)
	require.GreaterOrEqual(t, time.Since(t0), time.Second, "waited retry_after before polling again")
	require.Contains(t, lg.all(), "retrying in 1s")

	t1 := time.Now()
	require.NoError(t, bot.Send(context.Background(), "42", "reply"))
	require.GreaterOrEqual(t, time.Since(t1), time.Second)
	require.Len(t, fake.Sent(), 1)

	// A non-retryable error comes back at once.
	fake.FailNext(telegramtest.Failure{Method: "sendMessage", ErrorCode: 403, Description: "Forbidden: bot was blocked by the user"})
	err := bot.Send(context.Background(), "42", "x")
	require.ErrorContains(t, err, "403 Forbidden: bot was blocked by the user")
}

func TestTokenNeverInErrorsOrLogs(t *testing.T) {
	// Nothing listens here: every call fails at the transport.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "http://" + l.Addr().String()
	require.NoError(t, l.Close())

	bot, _, lg := start(t, Config{BaseURL: dead})
	err = bot.Send(context.Background(), "42", "hi")
	require.Error(t, err)
	require.NotContains(t, err.Error(), token)
	require.NotContains(t, err.Error(), "/bot")
	require.Eventually(t, func() bool { _, err := bot.Status(); return err != nil }, 5*time.Second, 10*time.Millisecond)
	_, serr := bot.Status()
	require.NotContains(t, serr.Error(), token)
	require.NotContains(t, lg.all(), token)
	require.NotContains(t, lg.all(), "/bot")

	// A wrong token: the 401 names the config field, not the token.
	fake := telegramtest.NewServer("other:token")
	defer fake.Close()
	bot2, _, lg2 := start(t, Config{BaseURL: fake.URL()})
	err = bot2.Send(context.Background(), "42", "hi")
	require.ErrorContains(t, err, "401 Unauthorized")
	require.ErrorContains(t, err, "channels.telegram.botToken")
	require.NotContains(t, err.Error(), token)
	require.Eventually(t, func() bool { _, err := bot2.Status(); return err != nil }, 5*time.Second, 10*time.Millisecond)
	require.NotContains(t, lg2.all(), token)
}

func TestConfigValidation(t *testing.T) {
	_, err := New(Config{})
	require.ErrorContains(t, err, "botToken")
	_, err = New(Config{Token: "a/b"})
	require.Error(t, err)
	_, err = New(Config{Token: token, BaseURL: "ftp://x"})
	require.ErrorContains(t, err, "base URL")
	b, err := New(Config{Token: token})
	require.NoError(t, err)
	require.Equal(t, "telegram", b.Name())
	require.Equal(t, DefaultBaseURL, b.base)
}

func TestSendSplitsLongText(t *testing.T) {
	fake := telegramtest.NewServer(token)
	defer fake.Close()
	bot, err := New(Config{Token: token, BaseURL: fake.URL()})
	require.NoError(t, err)
	long := strings.Repeat("ünïcode line\n", 1000) // 13,000 runes
	require.NoError(t, bot.Send(context.Background(), "42", long))
	sent := fake.Sent()
	require.Len(t, sent, 4)
	var joined strings.Builder
	for _, m := range sent {
		require.LessOrEqual(t, utf8.RuneCountInString(m.Text), MaxMessageRunes)
		joined.WriteString(m.Text)
	}
	require.Equal(t, long, joined.String())
	require.Error(t, bot.Send(context.Background(), "42", "  "))
}

// Sender names from Telegram are neutralised at ingestion: bidi overrides
// and controls never reach a reply, a log or the CLI.
func TestInboundNeutralisesNames(t *testing.T) {
	tests := []struct {
		name             string
		first, last, usr string
		wantName, wantU  string
	}{
		{"plain", "Ann", "Lee", "ann", "Ann Lee", "ann"},
		{"RLO in name", "\u202Eeve", "", "eve", "\uFFFDeve", "eve"},
		{"isolates and escape", "\u2066a\u2069", "\x1b[2J", "", "\uFFFDa\uFFFD \uFFFD[2J", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := Update{UpdateID: 1, Message: &Message{MessageID: 1, From: &User{ID: 42, FirstName: tt.first, LastName: tt.last, Username: tt.usr},
				Chat: Chat{ID: 42, Type: "private"}, Text: "hi"}}
			in, ok := u.Inbound("telegram")
			require.True(t, ok)
			require.Equal(t, "42", in.SenderID)
			require.Equal(t, tt.wantName, in.Meta["name"])
			require.Equal(t, tt.wantU, in.Meta["username"])
		})
	}
}

func FuzzParseUpdates(f *testing.F) {
	f.Add([]byte(`{"ok":true,"result":[{"update_id":1,"message":{"message_id":1,"from":{"id":42,"is_bot":false,"first_name":"\u202Eevil\u0007","username":"a"},"chat":{"id":42,"type":"private"},"date":1700000000,"text":"hi"}}]}`))
	f.Add([]byte(`{"ok":true,"result":[{"update_id":1,"message":{"message_id":1,"from":{"id":42,"is_bot":false,"first_name":"A","username":"a"},"chat":{"id":42,"type":"private"},"date":1700000000,"text":"hi"}}]}`))
	f.Add([]byte(`{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 5","parameters":{"retry_after":5}}`))
	f.Add([]byte(`{"ok":true,"result":[{"update_id":2,"edited_message":{"message_id":1,"chat":{"id":-1,"type":"group"}}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ups, err := ParseUpdates(data)
		if err != nil {
			return
		}
		for _, u := range ups {
			in, ok := u.Inbound("telegram")
			if !ok {
				continue
			}
			if in.SenderID == "" || in.ChatID == "" || strings.TrimSpace(in.Text) == "" {
				t.Fatalf("accepted an update without sender, chat or text: %+v", in)
			}
			if in.GroupID != "" && in.GroupID != in.ChatID {
				t.Fatalf("group id %q differs from chat id %q", in.GroupID, in.ChatID)
			}
			for _, v := range append([]string{in.SenderID, in.ChatID}, in.Meta["name"], in.Meta["username"]) {
				for _, r := range v {
					if r != textsafe.Replacement && !textsafe.Safe(string(r)) && r != '\u200C' && r != '\u200D' {
						t.Fatalf("control or format character %U reached the gateway in %q", r, v)
					}
				}
			}
		}
	})
}
