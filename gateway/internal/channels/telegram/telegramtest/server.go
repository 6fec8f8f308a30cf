// Package telegramtest is a fake Telegram Bot API server speaking the real
// JSON: getUpdates (long polling with offset/timeout/limit), sendMessage,
// getMe, and the {"ok":false,"error_code":N,"description":...} error shape,
// with 401 for a wrong token and 429 + parameters.retry_after on demand.
//
// Tests drive it in process (NewServer, SendDM, WaitSent). For a gateway in a
// container, run it standalone (gateway/cmd/faketelegram) and drive it over
// HTTP with the control endpoints, outside the /bot<token>/ namespace:
//
//	POST /_fake/dm     {"from_id":42,"username":"alice","text":"hi"}            -> {"update_id":1}
//	POST /_fake/group  {"chat_id":-100,"from_id":42,"text":"hi"}                 -> {"update_id":2}
//	POST /_fake/update <raw Update JSON; update_id assigned when 0>              -> {"update_id":3}
//	GET  /_fake/sent[?chat_id=42][&after=N]                                      -> [{"seq":1,"chat_id":"42","text":"..."}]
//	POST /_fake/fail   {"method":"sendMessage","error_code":429,"description":"Too Many Requests: retry after 1","retry_after":1}
//
// The control endpoints are for tests only: never expose this server.
package telegramtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// BotID is the fake bot's user id.
const BotID = 999000

// Sent is one message the bot sent through sendMessage.
type Sent struct {
	Seq       int    `json:"seq"`
	ChatID    string `json:"chat_id"`
	Text      string `json:"text"`
	MessageID int64  `json:"message_id"`
}

// Failure is an error the next call of Method returns instead of succeeding.
type Failure struct {
	Method      string `json:"method"`
	ErrorCode   int    `json:"error_code"`
	Description string `json:"description"`
	RetryAfter  int    `json:"retry_after,omitempty"`
}

// Server is the fake. The zero value is not usable; call NewServer or NewHandler.
type Server struct {
	token string
	ts    *httptest.Server

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every change
	updates  []json.RawMessage
	ids      []int64
	nextID   int64
	nextMsg  int64
	sent     []Sent
	failures []Failure
	polls    int
}

// NewHandler returns an unstarted fake, an http.Handler, for token.
func NewHandler(token string) *Server {
	return &Server{token: token, changed: make(chan struct{}), nextID: 1, nextMsg: 1}
}

// NewServer starts the fake on a loopback httptest server. Close it.
func NewServer(token string) *Server {
	s := NewHandler(token)
	s.ts = httptest.NewServer(s)
	return s
}

// URL is the base URL to give the adapter (Config.BaseURL).
func (s *Server) URL() string { return s.ts.URL }

// Close stops the httptest server.
func (s *Server) Close() {
	if s.ts != nil {
		s.ts.CloseClientConnections()
		s.ts.Close()
	}
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// AddUpdate queues a raw update; update_id is assigned when absent or 0.
func (s *Server) AddUpdate(raw []byte) (int64, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return 0, fmt.Errorf("update is not a JSON object: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nextID
	if v, ok := m["update_id"].(float64); ok && v != 0 {
		id = int64(v)
	}
	m["update_id"] = id
	if id >= s.nextID {
		s.nextID = id + 1
	}
	data, _ := json.Marshal(m)
	s.updates = append(s.updates, data)
	s.ids = append(s.ids, id)
	s.notifyLocked()
	return id, nil
}

func (s *Server) message(chatID int64, chatType string, fromID int64, username, text string) int64 {
	s.mu.Lock()
	msgID := s.nextMsg
	s.nextMsg++
	s.mu.Unlock()
	chat := map[string]any{"id": chatID, "type": chatType}
	if chatType == "private" {
		chat["first_name"] = username
		if username != "" {
			chat["username"] = username
		}
	} else {
		chat["title"] = "Test group"
	}
	from := map[string]any{"id": fromID, "is_bot": false, "first_name": "User" + strconv.FormatInt(fromID, 10)}
	if username != "" {
		from["username"] = username
	}
	up := map[string]any{"message": map[string]any{
		"message_id": msgID, "from": from, "chat": chat, "date": time.Now().Unix(), "text": text,
	}}
	raw, _ := json.Marshal(up)
	id, _ := s.AddUpdate(raw)
	return id
}

// SendDM queues a private text message from user fromID; returns its update_id.
func (s *Server) SendDM(fromID int64, username, text string) int64 {
	return s.message(fromID, "private", fromID, username, text)
}

// SendGroup queues a text message in a supergroup; returns its update_id.
func (s *Server) SendGroup(chatID, fromID int64, username, text string) int64 {
	return s.message(chatID, "supergroup", fromID, username, text)
}

// FailNext makes the next call of f.Method fail with f.
func (s *Server) FailNext(f Failure) {
	s.mu.Lock()
	s.failures = append(s.failures, f)
	s.mu.Unlock()
}

// Sent returns every message sent so far.
func (s *Server) Sent() []Sent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sent(nil), s.sent...)
}

// Polls counts getUpdates calls answered.
func (s *Server) Polls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.polls
}

// WaitSent waits until at least n messages were sent, and returns them all.
func (s *Server) WaitSent(ctx context.Context, n int) ([]Sent, error) {
	for {
		s.mu.Lock()
		if len(s.sent) >= n {
			out := append([]Sent(nil), s.sent...)
			s.mu.Unlock()
			return out, nil
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return s.Sent(), fmt.Errorf("waiting for %d sent messages: %w", n, ctx.Err())
		case <-ch:
		}
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func apiErr(w http.ResponseWriter, code int, desc string, retryAfter int) {
	body := map[string]any{"ok": false, "error_code": code, "description": desc}
	if retryAfter > 0 {
		body["parameters"] = map[string]any{"retry_after": retryAfter}
	}
	writeJSON(w, code, body)
}

func ok(w http.ResponseWriter, result any) {
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "result": result})
}

// params reads Bot API parameters from a JSON body, a form, or the query, as
// the real API accepts all three.
func params(r *http.Request) (map[string]any, error) {
	out := map[string]any{}
	for k, v := range r.URL.Query() {
		out[k] = v[0]
	}
	ct := r.Header.Get("Content-Type")
	switch {
	case strings.HasPrefix(ct, "application/json"):
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			return nil, err
		}
		if len(strings.TrimSpace(string(body))) > 0 {
			if err := json.Unmarshal(body, &out); err != nil {
				return nil, err
			}
		}
	case strings.HasPrefix(ct, "application/x-www-form-urlencoded"):
		if err := r.ParseForm(); err != nil {
			return nil, err
		}
		for k, v := range r.PostForm {
			out[k] = v[0]
		}
	}
	return out, nil
}

func intParam(p map[string]any, k string) (int64, bool) {
	switch v := p[k].(type) {
	case float64:
		return int64(v), true
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	}
	return 0, false
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_fake/") {
		s.control(w, r)
		return
	}
	rest, found := strings.CutPrefix(r.URL.Path, "/bot")
	if !found {
		apiErr(w, http.StatusNotFound, "Not Found", 0)
		return
	}
	token, method, found := strings.Cut(rest, "/")
	if !found || token != s.token {
		apiErr(w, http.StatusUnauthorized, "Unauthorized", 0)
		return
	}
	p, err := params(r)
	if err != nil {
		apiErr(w, http.StatusBadRequest, "Bad Request: can't parse request parameters", 0)
		return
	}
	if f, ok := s.takeFailure(method); ok {
		apiErr(w, f.ErrorCode, f.Description, f.RetryAfter)
		return
	}
	switch method {
	case "getMe":
		ok(w, map[string]any{"id": BotID, "is_bot": true, "first_name": "Fake Bot", "username": "fake_bot"})
	case "getUpdates":
		s.getUpdates(w, r, p)
	case "sendMessage":
		s.sendMessage(w, p)
	default:
		apiErr(w, http.StatusNotFound, "Not Found: method not found", 0)
	}
}

func (s *Server) takeFailure(method string) (Failure, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.failures {
		if f.Method == method {
			s.failures = append(s.failures[:i], s.failures[i+1:]...)
			return f, true
		}
	}
	return Failure{}, false
}

func (s *Server) getUpdates(w http.ResponseWriter, r *http.Request, p map[string]any) {
	offset, _ := intParam(p, "offset")
	timeout, _ := intParam(p, "timeout")
	limit, ok2 := intParam(p, "limit")
	if !ok2 || limit <= 0 || limit > 100 {
		limit = 100
	}
	if timeout > 50 {
		timeout = 50
	}
	deadline := time.NewTimer(time.Duration(timeout) * time.Second)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		// Like the real API, an offset confirms (drops) every earlier update.
		if offset > 0 {
			i := 0
			for i < len(s.ids) && s.ids[i] < offset {
				i++
			}
			s.ids, s.updates = s.ids[i:], s.updates[i:]
		}
		if len(s.updates) > 0 || timeout <= 0 {
			n := min(int64(len(s.updates)), limit)
			out := append([]json.RawMessage{}, s.updates[:n]...)
			s.polls++
			s.mu.Unlock()
			ok(w, out)
			return
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			timeout = 0
		case <-r.Context().Done():
			return
		}
	}
}

func (s *Server) sendMessage(w http.ResponseWriter, p map[string]any) {
	var chat string
	switch v := p["chat_id"].(type) {
	case float64:
		chat = strconv.FormatInt(int64(v), 10)
	case string:
		chat = v
	}
	if chat == "" {
		apiErr(w, http.StatusBadRequest, "Bad Request: chat_id is empty", 0)
		return
	}
	text, _ := p["text"].(string)
	if strings.TrimSpace(text) == "" {
		apiErr(w, http.StatusBadRequest, "Bad Request: message text is empty", 0)
		return
	}
	if len([]rune(text)) > 4096 {
		apiErr(w, http.StatusBadRequest, "Bad Request: message is too long", 0)
		return
	}
	chatID, err := strconv.ParseInt(chat, 10, 64)
	if err != nil {
		apiErr(w, http.StatusBadRequest, "Bad Request: chat not found", 0)
		return
	}
	s.mu.Lock()
	id := s.nextMsg
	s.nextMsg++
	s.sent = append(s.sent, Sent{Seq: len(s.sent) + 1, ChatID: chat, Text: text, MessageID: id})
	s.notifyLocked()
	s.mu.Unlock()
	chatType := "private"
	if chatID < 0 {
		chatType = "supergroup"
	}
	ok(w, map[string]any{
		"message_id": id,
		"from":       map[string]any{"id": BotID, "is_bot": true, "first_name": "Fake Bot", "username": "fake_bot"},
		"chat":       map[string]any{"id": chatID, "type": chatType},
		"date":       time.Now().Unix(),
		"text":       text,
	})
}

func (s *Server) control(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ChatID   int64  `json:"chat_id"`
		FromID   int64  `json:"from_id"`
		Username string `json:"username"`
		Text     string `json:"text"`
	}
	switch r.URL.Path {
	case "/_fake/dm", "/_fake/group":
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&in); err != nil || in.FromID == 0 {
			http.Error(w, "want JSON {from_id, text[, chat_id, username]}", http.StatusBadRequest)
			return
		}
		var id int64
		if r.URL.Path == "/_fake/dm" {
			id = s.SendDM(in.FromID, in.Username, in.Text)
		} else {
			if in.ChatID == 0 {
				http.Error(w, "chat_id is required for a group message", http.StatusBadRequest)
				return
			}
			id = s.SendGroup(in.ChatID, in.FromID, in.Username, in.Text)
		}
		writeJSON(w, http.StatusOK, map[string]int64{"update_id": id})
	case "/_fake/update":
		raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		id, err := s.AddUpdate(raw)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, http.StatusOK, map[string]int64{"update_id": id})
	case "/_fake/sent":
		after, _ := strconv.Atoi(r.URL.Query().Get("after"))
		chat := r.URL.Query().Get("chat_id")
		out := []Sent{}
		for _, m := range s.Sent() {
			if m.Seq > after && (chat == "" || m.ChatID == chat) {
				out = append(out, m)
			}
		}
		writeJSON(w, http.StatusOK, out)
	case "/_fake/fail":
		var f Failure
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&f); err != nil || f.Method == "" || f.ErrorCode == 0 {
			http.Error(w, "want JSON {method, error_code, description[, retry_after]}", http.StatusBadRequest)
			return
		}
		s.FailNext(f)
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	default:
		http.NotFound(w, r)
	}
}
