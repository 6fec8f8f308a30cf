package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/moltbot/moltbot-secure/services/errs"
)

// OpenAISettings is the provider config of the openai backend
// (models.providers.openai); APIKey is the decrypted key.
type OpenAISettings struct {
	BaseURL string
	Model   string
	APIKey  string
}

// Defaults of the OpenAI backend.
const (
	DefaultOpenAIRounds   = 4
	DefaultOpenAITimeout  = 60 * time.Second
	DefaultOpenAIMaxBytes = 1 << 20
	// DefaultSystemPrompt tells the model about its one tool.
	DefaultSystemPrompt = "You are moltbot, a helpful assistant. You can run shell commands with the exec tool; " +
		"commands outside the owner's main session run in an isolated sandbox."
)

// ExecToolName is the one tool the OpenAI backend declares.
const ExecToolName = "exec"

// OpenAI is the OpenAI-compatible chat-completions backend. It declares one
// tool, exec, whose calls go through Executor (the session's sandbox
// routing), and answers with the model's final message.
type OpenAI struct {
	// Settings returns the provider config; it is called for every turn,
	// so a reloaded config (new key, model or URL) applies to the next message.
	Settings func() (OpenAISettings, error)
	Executor Executor
	// HTTP is the client; nil means one with Timeout and no redirects.
	HTTP *http.Client
	// Rounds bounds the tool-call round trips per turn (default 4).
	Rounds int
	// Timeout bounds each HTTP request (default 60 s).
	Timeout time.Duration
	// MaxResponseBytes bounds each response body (default 1 MiB).
	MaxResponseBytes int64
	// SystemPrompt is sent first; empty means DefaultSystemPrompt.
	SystemPrompt string
}

var _ Agent = (*OpenAI)(nil)

// Chat-completions wire types (only the fields we use).
type (
	chatMessage struct {
		Role       string     `json:"role"`
		Content    *string    `json:"content"`
		ToolCalls  []toolCall `json:"tool_calls,omitempty"`
		ToolCallID string     `json:"tool_call_id,omitempty"`
	}
	toolCall struct {
		ID       string       `json:"id"`
		Type     string       `json:"type"`
		Function toolFunction `json:"function"`
	}
	toolFunction struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	}
	chatRequest struct {
		Model      string        `json:"model"`
		Messages   []chatMessage `json:"messages"`
		Tools      []tool        `json:"tools,omitempty"`
		ToolChoice string        `json:"tool_choice,omitempty"`
	}
	tool struct {
		Type     string  `json:"type"`
		Function toolDef `json:"function"`
	}
	toolDef struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
	}
	chatResponse struct {
		Choices []struct {
			Message      chatMessage `json:"message"`
			FinishReason string      `json:"finish_reason"`
		} `json:"choices"`
	}
	apiError struct {
		Error struct {
			Message string `json:"message"`
			Type    string `json:"type"`
		} `json:"error"`
	}
)

var execTool = tool{Type: "function", Function: toolDef{
	Name:        ExecToolName,
	Description: "Run a shell command and return its output and exit code.",
	Parameters:  json.RawMessage(`{"type":"object","properties":{"command":{"type":"string"}},"required":["command"]}`),
}}

func strp(s string) *string { return &s }

// Reply implements Agent.
func (o *OpenAI) Reply(ctx context.Context, t Turn) (string, error) {
	if o.Settings == nil {
		return "", fmt.Errorf("openai backend: no settings source: %w", errs.ErrFailedPrecondition)
	}
	set, err := o.Settings()
	if err != nil {
		return "", fmt.Errorf("openai backend: %w", err)
	}
	endpoint, err := chatEndpoint(set.BaseURL)
	if err != nil {
		return "", err
	}
	if set.Model == "" {
		return "", fmt.Errorf("models.providers.openai.model is not set (moltbot config set models.providers.openai.model <model>): %w", errs.ErrFailedPrecondition)
	}
	prompt := o.SystemPrompt
	if prompt == "" {
		prompt = DefaultSystemPrompt
	}
	msgs := []chatMessage{{Role: "system", Content: strp(prompt)}, {Role: "user", Content: strp(t.Text)}}
	rounds := o.Rounds
	if rounds <= 0 {
		rounds = DefaultOpenAIRounds
	}
	for round := 0; ; round++ {
		req := chatRequest{Model: set.Model, Messages: msgs, Tools: []tool{execTool}}
		if round == rounds {
			// Out of tool rounds: ask for the answer with what it has.
			req.ToolChoice = "none"
		}
		msg, err := o.complete(ctx, endpoint, set.APIKey, req)
		if err != nil {
			return "", err
		}
		if len(msg.ToolCalls) == 0 {
			if msg.Content == nil {
				return "", nil
			}
			return *msg.Content, nil
		}
		if round == rounds {
			return "", fmt.Errorf("openai backend: the model still asked for tools after %d rounds; stopped: %w", rounds, errs.ErrResourceExhausted)
		}
		msgs = append(msgs, chatMessage{Role: "assistant", Content: msg.Content, ToolCalls: msg.ToolCalls})
		for _, c := range msg.ToolCalls {
			msgs = append(msgs, chatMessage{Role: "tool", ToolCallID: c.ID, Content: strp(o.runTool(ctx, t, c))})
		}
	}
}

// runTool runs one tool call and returns what the model reads: the
// command's output, or why it was not run (the model can tell the user).
func (o *OpenAI) runTool(ctx context.Context, t Turn, c toolCall) string {
	if c.Function.Name != ExecToolName {
		return fmt.Sprintf("error: unknown tool %q; the only tool is %q", c.Function.Name, ExecToolName)
	}
	var args struct {
		Command string `json:"command"`
	}
	if err := json.Unmarshal([]byte(c.Function.Arguments), &args); err != nil {
		return `error: the arguments are not a JSON object {"command": "..."}: ` + err.Error()
	}
	if strings.TrimSpace(args.Command) == "" {
		return "error: command is empty"
	}
	if o.Executor == nil {
		return "error: this gateway has no executor configured"
	}
	res, err := o.Executor.Exec(ctx, t, args.Command)
	if err != nil {
		return "exec refused: " + err.Error()
	}
	return FormatResult(args.Command, res)
}

// chatEndpoint is {baseUrl}/chat/completions; the base URL must be http(s)
// without credentials (the key travels in the Authorization header only).
func chatEndpoint(base string) (string, error) {
	if strings.TrimSpace(base) == "" {
		return "", fmt.Errorf("models.providers.openai.baseUrl is not set (e.g. https://api.openai.com/v1): %w", errs.ErrFailedPrecondition)
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("models.providers.openai.baseUrl %q: want an http(s) URL like https://api.openai.com/v1: %w", redactURL(base), errs.ErrInvalidArgument)
	}
	if u.User != nil {
		return "", fmt.Errorf("models.providers.openai.baseUrl: must not carry credentials (the key goes in models.providers.openai.apiKey): %w", errs.ErrInvalidArgument)
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/chat/completions"
	u.RawPath = ""
	return u.String(), nil
}

// redactURL drops userinfo and the query, which may hold credentials.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable URL)"
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}

// transport is shared by every request: the dispatcher's workers ask the
// model at once, and Go's default of 2 idle connections per host made most
// of them open a new connection (and TLS session) per reply.
var transport = func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost = 64, 64
	return t
}()

func (o *OpenAI) client() *http.Client {
	if o.HTTP != nil {
		return o.HTTP
	}
	return &http.Client{
		Transport: transport,
		// The key must not follow a redirect to another host.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// complete does one chat-completions request and returns choices[0].message.
// No error text carries the key: it is only ever in the request header, and
// any echo of it in the provider's error message is redacted.
func (o *OpenAI) complete(ctx context.Context, endpoint, key string, creq chatRequest) (chatMessage, error) {
	body, err := json.Marshal(creq)
	if err != nil {
		return chatMessage{}, fmt.Errorf("openai backend: encode request: %w", err)
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultOpenAITimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	endpoint = redactURL(endpoint) // from here on only for messages
	if err != nil {
		return chatMessage{}, fmt.Errorf("openai backend: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := o.client().Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is named once below
		}
		if ctx.Err() != nil {
			return chatMessage{}, fmt.Errorf("openai backend: POST %s: no answer within %v: %w", endpoint, timeout, errs.ErrDeadlineExceeded)
		}
		return chatMessage{}, fmt.Errorf("openai backend: POST %s: %v: %w", endpoint, err, errs.ErrUnavailable)
	}
	defer resp.Body.Close()
	max := o.MaxResponseBytes
	if max <= 0 {
		max = DefaultOpenAIMaxBytes
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return chatMessage{}, fmt.Errorf("openai backend: read response of %s: %v: %w", endpoint, err, errs.ErrUnavailable)
	}
	if int64(len(data)) > max {
		return chatMessage{}, fmt.Errorf("openai backend: response of %s is larger than %d bytes: %w", endpoint, max, errs.ErrResourceExhausted)
	}
	if resp.StatusCode/100 != 2 {
		return chatMessage{}, statusError(endpoint, resp.StatusCode, data, key)
	}
	msg, err := decodeResponse(data)
	if err != nil {
		return chatMessage{}, fmt.Errorf("openai backend: %s answered: %w", endpoint, err)
	}
	return msg, nil
}

// decodeResponse parses a chat-completions body (outside input) into
// choices[0].message.
func decodeResponse(data []byte) (chatMessage, error) {
	var cr chatResponse
	if err := json.Unmarshal(data, &cr); err != nil {
		return chatMessage{}, fmt.Errorf("malformed JSON: %v: %w", err, errs.ErrUnavailable)
	}
	if len(cr.Choices) == 0 {
		return chatMessage{}, fmt.Errorf("no choices: %w", errs.ErrUnavailable)
	}
	m := cr.Choices[0].Message
	for i, c := range m.ToolCalls {
		if c.ID == "" {
			return chatMessage{}, fmt.Errorf("tool_calls[%d] has no id: %w", i, errs.ErrUnavailable)
		}
	}
	return m, nil
}

// statusError turns an HTTP error into an error class, with the provider's
// message (redacted, shortened) and the fix where it is known.
func statusError(endpoint string, code int, data []byte, key string) error {
	var ae apiError
	msg := ""
	if json.Unmarshal(data, &ae) == nil {
		msg = ae.Error.Message
	}
	if key != "" {
		msg = strings.ReplaceAll(msg, key, "[redacted]")
	}
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	var class error
	hint := ""
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		class, hint = errs.ErrPermissionDenied, " (check models.providers.openai.apiKey: moltbot config set models.providers.openai.apiKey -)"
	case code == http.StatusNotFound:
		class, hint = errs.ErrFailedPrecondition, " (check models.providers.openai.baseUrl and model)"
	case code == http.StatusTooManyRequests:
		class = errs.ErrResourceExhausted
	case code >= 400 && code < 500:
		class = errs.ErrInvalidArgument
	default:
		class = errs.ErrUnavailable
	}
	if msg != "" {
		msg = ": " + msg
	}
	return fmt.Errorf("openai backend: POST %s: HTTP %d%s%s: %w", endpoint, code, msg, hint, class)
}
