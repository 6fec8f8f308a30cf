package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/gateway/internal/agent/openaitest"
	"github.com/moltbot/moltbot-secure/gateway/internal/conntest"
	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
	"github.com/moltbot/moltbot-secure/services/errs"
)

const testKey = "sk-test-0123456789abcdefSECRET"

func newOpenAI(t *testing.T, fake *fakeSandboxd) (*OpenAI, *openaitest.Handler, *OpenAISettings) {
	t.Helper()
	srv, h := openaitest.NewServer(testKey)
	t.Cleanup(srv.Close)
	set := &OpenAISettings{BaseURL: srv.URL + "/v1", Model: "gpt-test", APIKey: testKey}
	pol := func() (*sandboxv1.Policy, error) { return &sandboxv1.Policy{Mode: sandboxv1.Mode_MODE_NON_MAIN}, nil }
	a := &OpenAI{
		Settings: func() (OpenAISettings, error) { return *set, nil },
		Executor: &Router{Sandbox: dialFake(t, fake), Policy: pol},
	}
	return a, h, set
}

func TestOpenAIToolRoundTrip(t *testing.T) {
	fake := &fakeSandboxd{}
	a, h, _ := newOpenAI(t, fake)
	ctx := context.Background()
	group := Turn{SessionKey: "agent:main:local:group:g1", AgentID: "main", Channel: "local", Text: "run: id -u"}

	reply, err := a.Reply(ctx, group)
	require.NoError(t, err)
	require.Equal(t, "ran 1 command(s):\n$ id -u\n10001\n\uFFFD\n[exit 137, killed: oom, sandbox 0123456789ab, profile hardened]", reply)
	require.Len(t, fake.got, 1, "the group's command went to sandboxd")
	require.Equal(t, "id -u", fake.got[0].GetShell())
	require.Equal(t, group.SessionKey, fake.got[0].GetSessionKey())

	reqs := h.Requests()
	require.Len(t, reqs, 2, "tool call, then the answer")
	for _, r := range reqs {
		require.True(t, r.Authorized, "Bearer key sent")
		require.Equal(t, "gpt-test", r.Model)
		require.True(t, r.HasExecTool, "the exec tool is declared")
	}
	require.Equal(t, 2, reqs[0].Messages, "system + user")
	require.Equal(t, 4, reqs[1].Messages, "system + user + assistant tool_calls + tool")
	require.Len(t, reqs[1].ToolResults, 1)

	// The owner's main session goes to sandboxd too, under the main profile.
	reply, err = a.Reply(ctx, Turn{SessionKey: "agent:main:main", AgentID: "main", Main: true, Owner: true, Text: "run: echo hi ;; echo there"})
	require.NoError(t, err)
	require.Equal(t, 2, strings.Count(reply, ", profile main]"), reply)
	require.Len(t, fake.got, 3)
	require.Equal(t, sandboxv1.Profile_PROFILE_MAIN, fake.got[2].GetProfile())

	reply, err = a.Reply(ctx, Turn{SessionKey: "agent:main:main", Text: "hello"})
	require.NoError(t, err)
	require.Equal(t, "fake model (gpt-test): hello", reply)

	// A refused command is reported to the model, not as a turn error.
	fake.fail = errors.Join(errors.New("Docker is not reachable (start the Docker engine)"), errs.ErrUnavailable)
	reply, err = a.Reply(ctx, group)
	require.NoError(t, err)
	require.Contains(t, reply, "exec refused: ")
	require.Contains(t, reply, "start the Docker engine")
}

func TestOpenAIRoundsAreBounded(t *testing.T) {
	a, h, _ := newOpenAI(t, &fakeSandboxd{})
	a.Rounds = 2
	reply, err := a.Reply(context.Background(), Turn{SessionKey: "agent:main:main", Main: true, Text: "loop: echo again"})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(reply, "ran 2 command(s):"), reply)
	reqs := h.Requests()
	require.Len(t, reqs, 3, "two tool rounds, then one request without tools")
	require.Equal(t, "none", reqs[2].ToolChoice)

	// A server that ignores tool_choice is cut off.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(`{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"exec","arguments":"{\"command\":\"true\"}"}}]},"finish_reason":"tool_calls"}]}`))
	}))
	defer srv.Close()
	a.Settings = func() (OpenAISettings, error) { return OpenAISettings{BaseURL: srv.URL, Model: "m"}, nil }
	_, err = a.Reply(context.Background(), Turn{SessionKey: "agent:main:main", Main: true, Text: "x"})
	require.ErrorIs(t, err, errs.ErrResourceExhausted)
	require.Contains(t, err.Error(), "after 2 rounds")
}

func TestOpenAIReloadedSettings(t *testing.T) {
	a, h, set := newOpenAI(t, &fakeSandboxd{})
	ctx := context.Background()
	turn := Turn{SessionKey: "agent:main:main", Text: "hi"}

	set.APIKey = "sk-wrong-key-9876543210SECRET"
	_, err := a.Reply(ctx, turn)
	require.ErrorIs(t, err, errs.ErrPermissionDenied)
	require.NotContains(t, err.Error(), set.APIKey, "the key the fake echoed back is redacted")
	require.NotContains(t, err.Error(), testKey)
	require.Contains(t, err.Error(), "[redacted]")
	require.Contains(t, err.Error(), "models.providers.openai.apiKey", "the fix names the field")
	require.False(t, h.Requests()[0].Authorized)

	set.APIKey, set.Model = testKey, "gpt-other"
	reply, err := a.Reply(ctx, turn)
	require.NoError(t, err, "the next turn reads the new settings")
	require.Equal(t, "fake model (gpt-other): hi", reply)
}

func TestOpenAIErrors(t *testing.T) {
	ctx := context.Background()
	turn := Turn{SessionKey: "agent:main:main", Text: "hi"}
	serve := func(f http.HandlerFunc) string {
		srv := httptest.NewServer(f)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	slow := serve(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then the server notices the client hanging up
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	big := serve(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(strings.Repeat(" ", 4096) + "{}")) })
	garbage := serve(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("<html>not json")) })
	noChoices := serve(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{"choices":[]}`)) })
	down := serve(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"error":{"message":"overloaded"}}`))
	})
	redirect := serve(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://example.invalid/", http.StatusFound)
	})

	for _, tc := range []struct {
		name  string
		set   OpenAISettings
		class error
		want  string
	}{
		{"no base URL", OpenAISettings{Model: "m"}, errs.ErrFailedPrecondition, "models.providers.openai.baseUrl is not set"},
		{"bad scheme", OpenAISettings{BaseURL: "ftp://host/v1", Model: "m"}, errs.ErrInvalidArgument, "want an http(s) URL"},
		{"credentials in URL", OpenAISettings{BaseURL: "https://user:hunter2@host/v1", Model: "m"}, errs.ErrInvalidArgument, "must not carry credentials"},
		{"no model", OpenAISettings{BaseURL: "http://127.0.0.1:1"}, errs.ErrFailedPrecondition, "models.providers.openai.model is not set"},
		{"unreachable", OpenAISettings{BaseURL: "http://127.0.0.1:1/v1", Model: "m"}, errs.ErrUnavailable, "127.0.0.1:1/v1/chat/completions"},
		{"timeout", OpenAISettings{BaseURL: slow, Model: "m"}, errs.ErrDeadlineExceeded, "no answer within 200ms"},
		{"response too large", OpenAISettings{BaseURL: big, Model: "m"}, errs.ErrResourceExhausted, "larger than 1024 bytes"},
		{"not JSON", OpenAISettings{BaseURL: garbage, Model: "m"}, errs.ErrUnavailable, "malformed JSON"},
		{"no choices", OpenAISettings{BaseURL: noChoices, Model: "m"}, errs.ErrUnavailable, "no choices"},
		{"HTTP 503", OpenAISettings{BaseURL: down, Model: "m"}, errs.ErrUnavailable, "HTTP 503: overloaded"},
		{"redirect not followed", OpenAISettings{BaseURL: redirect, Model: "m", APIKey: testKey}, errs.ErrUnavailable, "HTTP 302"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &OpenAI{Settings: func() (OpenAISettings, error) { return tc.set, nil }, Timeout: 200 * time.Millisecond, MaxResponseBytes: 1024}
			_, err := a.Reply(ctx, turn)
			require.ErrorIs(t, err, tc.class)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), "hunter2")
			require.NotContains(t, err.Error(), testKey)
		})
	}

	a := &OpenAI{Settings: func() (OpenAISettings, error) { return OpenAISettings{}, errors.New("decrypt apiKey: secretsd down") }}
	_, err := a.Reply(ctx, turn)
	require.ErrorContains(t, err, "secretsd down")
}

func TestOpenAIToolArguments(t *testing.T) {
	fake := &fakeSandboxd{}
	a := &OpenAI{Executor: &Router{Sandbox: dialFake(t, fake), Policy: func() (*sandboxv1.Policy, error) { return &sandboxv1.Policy{}, nil }}}
	main := Turn{SessionKey: "agent:main:main", Main: true, Owner: true}
	call := func(name, args string) string {
		return a.runTool(context.Background(), main, toolCall{ID: "c", Type: "function", Function: toolFunction{Name: name, Arguments: args}})
	}
	require.Contains(t, call("browse", `{}`), `unknown tool "browse"`)
	require.Contains(t, call("exec", `not json`), "not a JSON object")
	require.Equal(t, "error: command is empty", call("exec", `{"command":"  "}`))
	require.Contains(t, call("exec", `{"command":"echo ok"}`), ", profile main]")
	require.Len(t, fake.got, 1, "the owner's command runs in sandboxd, not the gateway")

	none := &OpenAI{Executor: &Router{Policy: func() (*sandboxv1.Policy, error) { return &sandboxv1.Policy{}, nil }}}
	out := none.runTool(context.Background(), main, toolCall{ID: "c", Type: "function", Function: toolFunction{Name: "exec", Arguments: `{"command":"echo ok"}`}})
	require.Contains(t, out, "the gateway runs no command itself", "without sandboxd nothing runs")
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add([]byte(`{"choices":[{"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}`))
	f.Add([]byte(`{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"exec","arguments":"{\"command\":\"ls\"}"}}]},"finish_reason":"tool_calls"}]}`))
	f.Add([]byte(`{"choices":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeResponse(data)
		if err != nil {
			require.ErrorIs(t, err, errs.ErrUnavailable)
			return
		}
		for _, c := range m.ToolCalls {
			require.NotEmpty(t, c.ID)
		}
	})
}

// Turns asked at once (one per dispatcher worker) reuse connections to the
// model: five rounds of 16 open at most 32.
func TestOpenAIConcurrentTurnsReuseConnections(t *testing.T) {
	srv, opened := conntest.Server(t, openaitest.NewHandler(testKey))
	a := &OpenAI{Settings: func() (OpenAISettings, error) {
		return OpenAISettings{BaseURL: srv.URL + "/v1", Model: "gpt-test", APIKey: testKey}, nil
	}}
	const workers = 16
	for range 5 {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := a.Reply(context.Background(), Turn{SessionKey: fmt.Sprintf("agent:main:local:dm:%d", w), Text: "hello"})
				require.NoError(t, err)
			}()
		}
		wg.Wait()
	}
	// A connection is back in the idle pool a moment after its answer is
	// read: allow one extra per worker (without reuse: about 70).
	require.LessOrEqual(t, opened.Load(), int64(2*workers))
}
