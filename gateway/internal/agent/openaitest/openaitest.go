// Package openaitest is a fake OpenAI chat-completions server speaking the
// real JSON, for tests of the openai agent backend (and, through
// cmd/fakeopenai, of a containerised gateway). It is scripted by the last
// user message:
//
//	"run: <command>"          -> one exec tool call, then a final answer quoting its output
//	"run: <c1> ;; <c2> ..."   -> several exec tool calls in one turn
//	"loop: <command>"         -> an exec tool call on every request (tests the round bound)
//	anything else             -> "fake model (<model>): <text>"
//
// Test use only.
package openaitest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
)

// Request is what the fake saw of one chat-completions call.
type Request struct {
	Authorized  bool     `json:"authorized"`
	Model       string   `json:"model"`
	Messages    int      `json:"messages"`
	HasExecTool bool     `json:"has_exec_tool"`
	ToolChoice  string   `json:"tool_choice,omitempty"`
	ToolResults []string `json:"tool_results,omitempty"`
}

// Handler is the fake API. Mount it at the root: it serves
// POST /v1/chat/completions (any prefix ending in /chat/completions) and
// GET /_fake/requests (what it saw, as JSON).
type Handler struct {
	key string

	mu   sync.Mutex
	reqs []Request
	seq  int
}

// NewHandler returns a fake that accepts "Authorization: Bearer <key>"
// (any key when key is empty).
func NewHandler(key string) *Handler { return &Handler{key: key} }

// Requests returns the calls seen so far.
func (h *Handler) Requests() []Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Request(nil), h.reqs...)
}

type message struct {
	Role       string     `json:"role"`
	Content    *string    `json:"content"`
	ToolCalls  []toolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

type toolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type request struct {
	Model    string    `json:"model"`
	Messages []message `json:"messages"`
	Tools    []struct {
		Type     string `json:"type"`
		Function struct {
			Name       string          `json:"name"`
			Parameters json.RawMessage `json:"parameters"`
		} `json:"function"`
	} `json:"tools"`
	ToolChoice any `json:"tool_choice"`
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/_fake/requests":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(h.Requests())
	case strings.HasSuffix(r.URL.Path, "/chat/completions"):
		if r.Method != http.MethodPost {
			apiErr(w, http.StatusMethodNotAllowed, "invalid_request_error", "use POST")
			return
		}
		h.complete(w, r)
	default:
		apiErr(w, http.StatusNotFound, "invalid_request_error", "unknown URL "+r.URL.Path)
	}
}

func (h *Handler) complete(w http.ResponseWriter, r *http.Request) {
	seen := Request{Authorized: h.key == "" || r.Header.Get("Authorization") == "Bearer "+h.key}
	defer func() {
		h.mu.Lock()
		h.reqs = append(h.reqs, seen)
		h.mu.Unlock()
	}()
	if !seen.Authorized {
		// The real API masks most of the key; the fake echoes it whole so a
		// test can check the client redacts it.
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		apiErr(w, http.StatusUnauthorized, "invalid_request_error", "Incorrect API key provided: "+got+".")
		return
	}
	var req request
	dec := json.NewDecoder(io.LimitReader(r.Body, 4<<20))
	if err := dec.Decode(&req); err != nil {
		apiErr(w, http.StatusBadRequest, "invalid_request_error", "We could not parse the JSON body of your request: "+err.Error())
		return
	}
	seen.Model, seen.Messages = req.Model, len(req.Messages)
	if s, ok := req.ToolChoice.(string); ok {
		seen.ToolChoice = s
	}
	for _, t := range req.Tools {
		if t.Type == "function" && t.Function.Name == "exec" && json.Valid(t.Function.Parameters) {
			seen.HasExecTool = true
		}
	}
	if req.Model == "" {
		apiErr(w, http.StatusBadRequest, "invalid_request_error", "you must provide a model parameter")
		return
	}
	if len(req.Messages) == 0 {
		apiErr(w, http.StatusBadRequest, "invalid_request_error", "'messages' must contain at least one message")
		return
	}
	// Like the real API: every tool message answers a tool call of an
	// earlier assistant message.
	calls := map[string]bool{}
	var results []string
	for i, m := range req.Messages {
		for _, c := range m.ToolCalls {
			calls[c.ID] = true
		}
		if m.Role == "tool" {
			if !calls[m.ToolCallID] {
				apiErr(w, http.StatusBadRequest, "invalid_request_error",
					fmt.Sprintf("Invalid parameter: messages[%d] with role 'tool' must be a response to a preceding message with 'tool_calls'.", i))
				return
			}
			if m.Content != nil {
				results = append(results, *m.Content)
			}
		}
	}
	seen.ToolResults = results
	last := req.Messages[len(req.Messages)-1]
	user := lastUser(req.Messages)
	noTools := seen.ToolChoice == "none" || !seen.HasExecTool
	switch {
	case strings.HasPrefix(user, "loop:") && !noTools:
		h.toolCalls(w, req.Model, []string{strings.TrimSpace(strings.TrimPrefix(user, "loop:"))})
	case last.Role == "tool":
		h.answer(w, req.Model, fmt.Sprintf("ran %d command(s):\n%s", len(results), strings.Join(results, "\n")))
	case strings.HasPrefix(user, "run:") && !noTools:
		var cmds []string
		for _, c := range strings.Split(strings.TrimPrefix(user, "run:"), ";;") {
			cmds = append(cmds, strings.TrimSpace(c))
		}
		h.toolCalls(w, req.Model, cmds)
	default:
		h.answer(w, req.Model, fmt.Sprintf("fake model (%s): %s", req.Model, user))
	}
}

func lastUser(ms []message) string {
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].Role == "user" && ms[i].Content != nil {
			return strings.TrimSpace(*ms[i].Content)
		}
	}
	return ""
}

func (h *Handler) nextID(prefix string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	return fmt.Sprintf("%s%06d", prefix, h.seq)
}

func (h *Handler) toolCalls(w http.ResponseWriter, model string, cmds []string) {
	var calls []map[string]any
	for _, c := range cmds {
		args, _ := json.Marshal(map[string]string{"command": c})
		calls = append(calls, map[string]any{
			"id": h.nextID("call_"), "type": "function",
			"function": map[string]any{"name": "exec", "arguments": string(args)},
		})
	}
	h.reply(w, model, map[string]any{"role": "assistant", "content": nil, "tool_calls": calls}, "tool_calls")
}

func (h *Handler) answer(w http.ResponseWriter, model, text string) {
	h.reply(w, model, map[string]any{"role": "assistant", "content": text}, "stop")
}

func (h *Handler) reply(w http.ResponseWriter, model string, msg map[string]any, finish string) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": h.nextID("chatcmpl-"), "object": "chat.completion", "created": 1700000000, "model": model,
		"choices": []map[string]any{{"index": 0, "message": msg, "finish_reason": finish}},
		"usage":   map[string]int{"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
	})
}

func apiErr(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}})
}

// NewServer starts the fake on a loopback httptest server; its base URL
// for the client is srv.URL + "/v1". Close the server when done.
func NewServer(key string) (*httptest.Server, *Handler) {
	h := NewHandler(key)
	return httptest.NewServer(h), h
}
