package pairing

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/moltbot/moltbot-secure/pairingd/internal/store"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// MaxImportBytes bounds each upstream file handed to Import.
const MaxImportBytes = 1 << 20

// Upstream layout (openclaw/moltbot src/pairing/pairing-store.ts), one pair
// of files per channel under <stateDir>/credentials/:
//
//	<channel>-pairing.json   {"version":1,"requests":[{"id":"123","code":"ABCD2345",
//	                          "createdAt":"<RFC 3339>","lastSeenAt":"...","meta":{"username":"..."}}]}
//	<channel>-allowFrom.json {"version":1,"allowFrom":["123","456"]}
//
// Unknown fields are ignored (upstream grew some over time); a field of the
// wrong type is an error naming the file and field, and nothing is stored.
// Ids may be JSON strings or numbers, as upstream's normalizeId accepts both.
type upstreamPairing struct {
	Version  *int              `json:"version"`
	Requests []upstreamRequest `json:"requests"`
}

type upstreamRequest struct {
	ID         json.RawMessage   `json:"id"`
	Code       string            `json:"code"`
	CreatedAt  string            `json:"createdAt"`
	LastSeenAt string            `json:"lastSeenAt"`
	Meta       map[string]string `json:"meta"`
}

type upstreamAllowFrom struct {
	Version   *int              `json:"version"`
	AllowFrom []json.RawMessage `json:"allowFrom"`
}

// ImportResult counts what Import did.
type ImportResult struct {
	PendingImported int
	AllowedImported int
	Skipped         int
}

// Import merges the upstream files of one channel: pending requests that are
// still live and fit the queue, and the allowlist. Either input may be empty.
// Entries already present, expired, malformed or over the queue limit are
// skipped and counted. Everything is written in one transaction.
func (s *Service) Import(ctx context.Context, channel string, pairingJSON, allowFromJSON []byte) (ImportResult, error) {
	if err := s.checkChannel(channel); err != nil {
		return ImportResult{}, err
	}
	pf := channel + "-pairing.json"
	af := channel + "-allowFrom.json"
	var up upstreamPairing
	if err := decodeUpstream(pf, pairingJSON, &up); err != nil {
		return ImportResult{}, err
	}
	if err := checkVersion(pf, up.Version); err != nil {
		return ImportResult{}, err
	}
	var ua upstreamAllowFrom
	if err := decodeUpstream(af, allowFromJSON, &ua); err != nil {
		return ImportResult{}, err
	}
	if err := checkVersion(af, ua.Version); err != nil {
		return ImportResult{}, err
	}
	// Type-check every id before anything is stored.
	reqIDs := make([]string, len(up.Requests))
	for i, r := range up.Requests {
		id, err := upstreamID(r.ID)
		if err != nil {
			return ImportResult{}, fmt.Errorf("%s: requests[%d].id: %v: %w", pf, i, err, errs.ErrInvalidArgument)
		}
		reqIDs[i] = id
	}
	allowIDs := make([]string, len(ua.AllowFrom))
	for i, raw := range ua.AllowFrom {
		id, err := upstreamID(raw)
		if err != nil {
			return ImportResult{}, fmt.Errorf("%s: allowFrom[%d]: %v: %w", af, i, err, errs.ErrInvalidArgument)
		}
		allowIDs[i] = id
	}
	if err := ctx.Err(); err != nil {
		return ImportResult{}, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var res ImportResult

	allowedNow, err := s.st.ListAllowed(channel)
	if err != nil {
		return ImportResult{}, err
	}
	allowed := map[string]bool{}
	for _, a := range allowedNow {
		allowed[a.SenderID] = true
	}
	var newAllowed []store.Allowed
	for _, raw := range allowIDs {
		id := normalizeAllowEntry(channel, raw)
		if id == "" || id == "*" || ValidateSenderID(id) != nil || allowed[id] {
			// "*" meant "open" upstream; that policy does not exist here.
			res.Skipped++
			continue
		}
		allowed[id] = true
		newAllowed = append(newAllowed, store.Allowed{Channel: channel, SenderID: id, ApprovedAt: now})
	}

	live, err := s.livePending(channel, now)
	if err != nil {
		return ImportResult{}, err
	}
	pendingSender := map[string]bool{}
	codes := map[string]bool{}
	for _, p := range live {
		pendingSender[p.SenderID] = true
		codes[p.Code] = true
	}
	room := s.maxPending - len(live)
	var newPending []store.Pending
	for i, r := range up.Requests {
		id := strings.TrimSpace(reqIDs[i])
		code, cerr := NormalizeCode(r.Code)
		created, terr := time.Parse(time.RFC3339Nano, r.CreatedAt)
		meta := dropEmpty(r.Meta)
		switch {
		case ValidateSenderID(id) != nil, cerr != nil, terr != nil, ValidateMeta(meta) != nil,
			allowed[id], pendingSender[id], codes[code], room <= 0:
			res.Skipped++
			continue
		}
		exp := created.Add(s.ttl)
		if !now.Before(exp) {
			res.Skipped++
			continue
		}
		pendingSender[id], codes[code] = true, true
		room--
		newPending = append(newPending, store.Pending{
			Channel: channel, SenderID: id, Code: code, Meta: meta,
			CreatedAt: created, ExpiresAt: exp,
			// Upstream already replied to this sender.
			LastReplyAt: now,
		})
	}
	if err := s.st.Import(newPending, newAllowed); err != nil {
		return ImportResult{}, err
	}
	res.PendingImported, res.AllowedImported = len(newPending), len(newAllowed)
	for _, p := range newPending {
		s.events.publish(Event{Kind: EventRequested, Request: p, At: now})
	}
	s.log.Info("pairing import", "channel", channel, "pending", res.PendingImported, "allowed", res.AllowedImported, "skipped", res.Skipped)
	return res, nil
}

func decodeUpstream(name string, data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	return config.DecodeJSON(data, config.Text{Where: name, Noun: "file", MaxBytes: MaxImportBytes}, v)
}

func checkVersion(name string, v *int) error {
	// Absent means an early upstream file; only version 1 ever existed.
	if v != nil && *v != 1 {
		return fmt.Errorf("%s: version %d is not supported (want 1); upgrade moltbot-secure: %w", name, *v, errs.ErrInvalidArgument)
	}
	return nil
}

// upstreamID accepts a JSON string or an integer number.
func upstreamID(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", fmt.Errorf("missing")
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return s, nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		var n json.Number
		if err := json.Unmarshal(raw, &n); err != nil {
			return "", err
		}
		if _, err := n.Int64(); err != nil {
			return "", fmt.Errorf("number %s is not an integer id", n)
		}
		return n.String(), nil
	}
	return "", fmt.Errorf("want a string or integer, got %.20s", raw)
}

// normalizeAllowEntry mirrors upstream: trim and drop a "<channel>:" prefix
// (and "tg:" for telegram).
func normalizeAllowEntry(channel, entry string) string {
	e := strings.TrimSpace(entry)
	prefixes := []string{channel + ":"}
	if channel == "telegram" {
		prefixes = append(prefixes, "tg:")
	}
	for _, p := range prefixes {
		if len(e) >= len(p) && strings.EqualFold(e[:len(p)], p) {
			return strings.TrimSpace(e[len(p):])
		}
	}
	return e
}

func dropEmpty(m map[string]string) map[string]string {
	var out map[string]string
	for k, v := range m {
		if v = strings.TrimSpace(v); v != "" {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}
