package telegram

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/moltbot/moltbot-secure/gateway/internal/channels"
	"github.com/moltbot/moltbot-secure/services/textsafe"
)

// Wire types: the subset of the Bot API (https://core.telegram.org/bots/api)
// the adapter reads. Unknown fields are ignored, as the API adds them often.

// Response is the envelope of every Bot API reply.
type Response struct {
	OK          bool                `json:"ok"`
	Result      json.RawMessage     `json:"result,omitempty"`
	ErrorCode   int                 `json:"error_code,omitempty"`
	Description string              `json:"description,omitempty"`
	Parameters  *ResponseParameters `json:"parameters,omitempty"`
}

// ResponseParameters carries retry_after on 429.
type ResponseParameters struct {
	RetryAfter      int   `json:"retry_after,omitempty"`
	MigrateToChatID int64 `json:"migrate_to_chat_id,omitempty"`
}

// Update is one getUpdates entry.
type Update struct {
	UpdateID      int64    `json:"update_id"`
	Message       *Message `json:"message,omitempty"`
	EditedMessage *Message `json:"edited_message,omitempty"`
	ChannelPost   *Message `json:"channel_post,omitempty"`
}

// Message is a chat message.
type Message struct {
	MessageID int64  `json:"message_id"`
	From      *User  `json:"from,omitempty"`
	Chat      Chat   `json:"chat"`
	Date      int64  `json:"date"`
	Text      string `json:"text,omitempty"`
}

// User is a Telegram user or bot.
type User struct {
	ID        int64  `json:"id"`
	IsBot     bool   `json:"is_bot"`
	FirstName string `json:"first_name,omitempty"`
	LastName  string `json:"last_name,omitempty"`
	Username  string `json:"username,omitempty"`
}

// Chat is where a message was sent. Type: private, group, supergroup, channel.
type Chat struct {
	ID       int64  `json:"id"`
	Type     string `json:"type"`
	Title    string `json:"title,omitempty"`
	Username string `json:"username,omitempty"`
}

// APIError is a Bot API error reply ({"ok":false,...}).
type APIError struct {
	Method      string
	Code        int
	Description string
	RetryAfter  int // seconds, from parameters.retry_after
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("telegram %s: %d %s", e.Method, e.Code, e.Description)
	switch {
	case e.Code == 401 || e.Code == 404:
		msg += " (the bot token was rejected; check channels.telegram.botToken)"
	case e.Code == 409:
		msg += " (another client is polling this bot, or a webhook is set)"
	case e.RetryAfter > 0:
		msg += fmt.Sprintf(" (retry after %d s)", e.RetryAfter)
	}
	return msg
}

// ParseUpdates decodes a getUpdates reply. It accepts only the real shape:
// an envelope with ok=true and an array result; ok=false is an *APIError.
func ParseUpdates(body []byte) ([]Update, error) {
	var r Response
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("telegram getUpdates: decode reply: %w", err)
	}
	if !r.OK {
		return nil, apiError("getUpdates", r)
	}
	var ups []Update
	if err := json.Unmarshal(r.Result, &ups); err != nil {
		return nil, fmt.Errorf("telegram getUpdates: decode result: %w", err)
	}
	return ups, nil
}

// maxDescription bounds a Bot API error description kept in an error.
const maxDescription = 256

// apiError keeps the server's description only as neutral text: it
// reaches status, logs and errors.
func apiError(method string, r Response) *APIError {
	e := &APIError{Method: method, Code: r.ErrorCode, Description: textsafe.Neutralize(r.Description, maxDescription)}
	if r.Parameters != nil {
		e.RetryAfter = r.Parameters.RetryAfter
	}
	return e
}

// Inbound converts an update to a gateway message. Only new text messages
// from people count: edits, channel posts, service messages, media without
// text and messages from bots are ignored (ok=false).
func (u Update) Inbound(channel string) (channels.Inbound, bool) {
	m := u.Message
	if m == nil || m.From == nil || m.From.IsBot || m.From.ID == 0 || m.Chat.ID == 0 {
		return channels.Inbound{}, false
	}
	if strings.TrimSpace(m.Text) == "" {
		return channels.Inbound{}, false
	}
	in := channels.Inbound{
		Channel:   channel,
		SenderID:  strconv.FormatInt(m.From.ID, 10),
		ChatID:    strconv.FormatInt(m.Chat.ID, 10),
		Text:      m.Text,
		MessageID: strconv.FormatInt(m.MessageID, 10),
	}
	switch m.Chat.Type {
	case "private":
	case "group", "supergroup":
		in.GroupID = in.ChatID
	default: // "channel" or unknown: not a conversation with a person
		return channels.Inbound{}, false
	}
	meta := map[string]string{}
	// Names are only shown: neutralised, not refused (textsafe). The ids
	// above are decimal numbers and cannot carry control characters.
	if u := textsafe.Neutralize(m.From.Username, 64); u != "" {
		meta["username"] = u
	}
	if name := textsafe.Neutralize(m.From.FirstName+" "+m.From.LastName, 128); name != "" {
		meta["name"] = name
	}
	if len(meta) > 0 {
		in.Meta = meta
	}
	return in, true
}
