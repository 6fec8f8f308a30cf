package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moltbot/moltbot-secure/gateway/internal/agent"
	"github.com/moltbot/moltbot-secure/gateway/internal/agent/openaitest"
	"github.com/moltbot/moltbot-secure/gateway/internal/channels/telegram"
	"github.com/moltbot/moltbot-secure/gateway/internal/channels/telegram/telegramtest"
	"github.com/moltbot/moltbot-secure/gateway/internal/policy"
	"github.com/moltbot/moltbot-secure/gateway/internal/sessions"
)

// End to end over the Telegram Bot API, in process: an update is queued in
// the fake Bot API (telegramtest, the real JSON over HTTP), the telegram
// adapter long-polls it, the pipeline decides (policy), touches the session
// index and asks the openai agent, which calls a fake chat-completions
// server over HTTP (openaitest); the reply is sendMessage'd back to the fake.
// The latency is from queueing the update to the fake receiving the reply
// for that chat.
//
// The baseline ("bare") is the same fake and the same senders answered by a
// minimal client: one getUpdates return and one sendMessage per update.
//
// "gateway-slow-chat" measures the same while one other chat's message runs
// a 10 s command: the model asks for the exec tool ("run: sleep 10") and the
// executor runs it (on the host here: the sandbox is not what is measured),
// so that chat's agent turn blocks for 10 s like a long command does.

const e2eToken = "123456:bench-token"

// replyWatch wraps the fake Bot API and signals, per chat, every
// sendMessage it answers.
type replyWatch struct {
	inner http.Handler
	mu    sync.Mutex
	chats map[string]chan struct{}
}

func (w *replyWatch) chat(id string) chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, ok := w.chats[id]
	if !ok {
		c = make(chan struct{}, 4096)
		w.chats[id] = c
	}
	return c
}

func (w *replyWatch) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/sendMessage") {
		w.inner.ServeHTTP(rw, r)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	r.Body = io.NopCloser(bytes.NewReader(body))
	chat := ""
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var m map[string]any
		if json.Unmarshal(body, &m) == nil {
			chat = fmt.Sprint(m["chat_id"])
			if f, ok := m["chat_id"].(float64); ok {
				chat = strconv.FormatInt(int64(f), 10)
			}
		}
	} else if err := r.ParseForm(); err == nil {
		chat = r.PostForm.Get("chat_id")
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	w.inner.ServeHTTP(rw, r)
	select {
	case w.chat(chat) <- struct{}{}:
	default:
	}
}

// hostExec runs the exec tool's command with /bin/sh on the host and says
// when a command starts.
type hostExec struct{ started chan string }

func (h hostExec) Exec(ctx context.Context, _ agent.Turn, command string) (agent.ExecResult, error) {
	select {
	case h.started <- command:
	default:
	}
	out, err := exec.CommandContext(ctx, "/bin/sh", "-c", command).CombinedOutput()
	code := 0
	if err != nil {
		code = 1
	}
	return agent.ExecResult{ExitCode: code, Stdout: out}, nil
}

type e2eEnv struct {
	fake  *telegramtest.Server
	watch *replyWatch
	url   string
	exec  hostExec
}

func newE2E(b *testing.B, gateway bool, senders []int64) *e2eEnv {
	fake := telegramtest.NewHandler(e2eToken)
	w := &replyWatch{inner: fake, chats: map[string]chan struct{}{}}
	ts := httptest.NewServer(w)
	b.Cleanup(ts.Close)
	e := &e2eEnv{fake: fake, watch: w, url: ts.URL, exec: hostExec{started: make(chan string, 1)}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	b.Cleanup(func() { cancel(); <-done })
	if !gateway {
		go func() { defer close(done); bareClient(ctx, ts.URL) }()
		return e
	}
	llm, _ := openaitest.NewServer("sk-bench")
	b.Cleanup(llm.Close)
	mp := &memPairing{allowed: map[string]bool{}, codes: map[string]string{}}
	for _, id := range senders {
		mp.allowed["telegram/"+strconv.FormatInt(id, 10)] = true
	}
	eng, err := policy.New(policy.EngineConfig{Pairing: mp})
	if err != nil {
		b.Fatal(err)
	}
	st, err := sessions.Open(filepath.Join(b.TempDir(), "sessions.json"), nil)
	if err != nil {
		b.Fatal(err)
	}
	bot, err := telegram.New(telegram.Config{Token: e2eToken, BaseURL: ts.URL})
	if err != nil {
		b.Fatal(err)
	}
	ag := &agent.OpenAI{
		Settings: func() (agent.OpenAISettings, error) {
			return agent.OpenAISettings{BaseURL: llm.URL + "/v1", Model: "bench", APIKey: "sk-bench"}, nil
		},
		Executor: e.exec,
	}
	p, err := New(Config{Engine: eng, Channels: []Channel{{Channel: bot}}, Agent: ag, Sessions: st})
	if err != nil {
		b.Fatal(err)
	}
	go func() { defer close(done); p.Start(ctx) }()
	return e
}

// bareClient is the minimal Bot API client: long-poll getUpdates, answer
// each update with one sendMessage, in order.
func bareClient(ctx context.Context, base string) {
	hc := &http.Client{}
	call := func(method string, params map[string]any, out any) error {
		body, _ := json.Marshal(params)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/bot"+e2eToken+"/"+method, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(out)
	}
	var offset int64
	for ctx.Err() == nil {
		var r struct {
			Result []struct {
				UpdateID int64 `json:"update_id"`
				Message  struct {
					Chat struct {
						ID int64 `json:"id"`
					} `json:"chat"`
					Text string `json:"text"`
				} `json:"message"`
			} `json:"result"`
		}
		if err := call("getUpdates", map[string]any{"offset": offset, "timeout": 30}, &r); err != nil {
			continue
		}
		for _, u := range r.Result {
			offset = u.UpdateID + 1
			var sent map[string]any
			_ = call("sendMessage", map[string]any{"chat_id": u.Message.Chat.ID, "text": "echo: " + u.Message.Text}, &sent)
		}
	}
}

// BenchmarkTelegramE2E reports p50/p99 of inject -> reply received. One
// iteration is e2eRounds(n) rounds, a round one message from each sender at
// once; make bench runs it with -benchtime 1x (Go runs a benchmark once
// with b.N=1 before any longer run, which would start a second 10 s command).
func BenchmarkTelegramE2E(b *testing.B) {
	const slowChat = 7000
	for _, n := range []int{1, 50} {
		for _, path := range []string{"bare", "gateway", "gateway-slow-chat"} {
			if n == 1 && path == "gateway-slow-chat" {
				continue
			}
			b.Run(fmt.Sprintf("senders=%d/path=%s", n, path), func(b *testing.B) {
				senders := make([]int64, n)
				for i := range senders {
					senders[i] = int64(1000 + i)
				}
				e := newE2E(b, path != "bare", append(slices.Clone(senders), slowChat))
				// Warm up: every sender once (connections, the session index).
				e.round(b, senders)
				if path == "gateway-slow-chat" {
					e.fake.SendDM(slowChat, "slow", "run: sleep 10")
					select {
					case cmd := <-e.exec.started:
						if cmd != "sleep 10" {
							b.Fatalf("slow chat ran %q", cmd)
						}
					case <-time.After(30 * time.Second):
						b.Fatal("the slow chat's command did not start")
					}
				}
				var lat []time.Duration
				start := time.Now()
				b.ResetTimer()
				for i := 0; i < b.N*e2eRounds(n); i++ {
					lat = append(lat, e.round(b, senders)...)
				}
				b.StopTimer()
				if path == "gateway-slow-chat" {
					if time.Since(start) > 10*time.Second {
						b.Logf("the measurement outlasted the 10 s command (%s): part of it ran without it", time.Since(start).Round(time.Millisecond))
					}
					select { // its reply, so the run ends clean
					case <-e.watch.chat(strconv.Itoa(slowChat)):
					case <-time.After(30 * time.Second):
						b.Fatal("no reply to the slow chat")
					}
				}
				slices.Sort(lat)
				pct := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)].Nanoseconds()) / 1e6 }
				b.ReportMetric(pct(0.50), "p50-ms")
				b.ReportMetric(pct(0.99), "p99-ms")
			})
		}
	}
}

// e2eRounds: 200 messages from one sender, 500 from 50, per iteration.
func e2eRounds(senders int) int {
	if senders == 1 {
		return 200
	}
	return 10
}

// round sends one message from every sender at once and returns each one's
// latency to its reply.
func (e *e2eEnv) round(b *testing.B, senders []int64) []time.Duration {
	out := make([]time.Duration, len(senders))
	errs := make([]error, len(senders))
	var wg sync.WaitGroup
	for i, id := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := e.watch.chat(strconv.FormatInt(id, 10))
			t0 := time.Now()
			e.fake.SendDM(id, "", "ping")
			select {
			case <-c:
				out[i] = time.Since(t0)
			case <-time.After(60 * time.Second):
				errs[i] = fmt.Errorf("sender %d: no reply within 60 s", id)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return out
}
