// Package envelope is the one encoder/decoder of the JSON form that replaces a
// secret value at rest (DESIGN.md section 4):
//
//	{"$enc":"v1","kid":"k2","alg":"AES-256-GCM","nonce":"<b64>","ct":"<b64>"}
//
// The envelope is self-describing so that a decrypter can check the version,
// algorithm and key id before doing any crypto (the Vault transit rule). The
// same value appears in two shapes: as JSON text (the secretsd RPCs) and as an
// object inside a config tree (map[string]any); both go through the same strict
// validation.
package envelope

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/moltbot/moltbot-secure/services/errs"
)

const (
	// Version is the only envelope version this code reads and writes.
	Version = "v1"
	// AlgAES256GCM is the only algorithm.
	AlgAES256GCM = "AES-256-GCM"
	// NonceSize is the GCM standard nonce length in bytes.
	NonceSize = 12
	// TagSize is the GCM tag length; ct always carries it, so it is the minimum.
	TagSize = 16
	// MaxTextSize bounds what Decode accepts (a sealed config backup fits easily);
	// it keeps a hostile input from costing unbounded memory.
	MaxTextSize = 16 << 20

	// Key names in the JSON form.
	KeyVersion = "$enc"
	KeyKID     = "kid"
	KeyAlg     = "alg"
	KeyNonce   = "nonce"
	KeyCT      = "ct"
)

var knownKeys = map[string]bool{KeyVersion: true, KeyKID: true, KeyAlg: true, KeyNonce: true, KeyCT: true}

// Envelope is one sealed value. CT holds ciphertext followed by the GCM tag.
type Envelope struct {
	KID   string
	Nonce []byte
	CT    []byte
}

// Encode returns the compact JSON text, keys in a fixed order.
func (e Envelope) Encode() (string, error) {
	if err := e.validate(); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(`{"$enc":"` + Version + `","kid":`)
	kid, _ := json.Marshal(e.KID) // a string always marshals
	b.Write(kid)
	b.WriteString(`,"alg":"` + AlgAES256GCM + `","nonce":"`)
	b.WriteString(base64.StdEncoding.EncodeToString(e.Nonce))
	b.WriteString(`","ct":"`)
	b.WriteString(base64.StdEncoding.EncodeToString(e.CT))
	b.WriteString(`"}`)
	return b.String(), nil
}

// Map returns the envelope as a JSON object value for a config tree.
func (e Envelope) Map() map[string]any {
	return map[string]any{
		KeyVersion: Version,
		KeyKID:     e.KID,
		KeyAlg:     AlgAES256GCM,
		KeyNonce:   base64.StdEncoding.EncodeToString(e.Nonce),
		KeyCT:      base64.StdEncoding.EncodeToString(e.CT),
	}
}

// Decode parses and strictly validates the JSON text of an envelope.
func Decode(text string) (Envelope, error) {
	if len(text) > MaxTextSize {
		return Envelope{}, invalid("is %d bytes, more than the %d-byte limit", len(text), MaxTextSize)
	}
	if e, ok := decodeFast(text); ok {
		return e, nil
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return Envelope{}, invalid("is not a JSON object: %v", err)
	}
	if m == nil {
		return Envelope{}, invalid("is not a JSON object")
	}
	if dec.More() {
		return Envelope{}, invalid("has trailing data after the JSON object")
	}
	return FromMap(m)
}

// DecodeValue accepts either shape: JSON text or an object from a config tree.
func DecodeValue(v any) (Envelope, error) {
	switch t := v.(type) {
	case string:
		return Decode(t)
	case map[string]any:
		return FromMap(t)
	default:
		return Envelope{}, invalid("is a %T, want a JSON object", v)
	}
}

// FromMap validates an envelope held as a config tree object.
func FromMap(m map[string]any) (Envelope, error) {
	var unknown []string
	for k := range m {
		if !knownKeys[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return Envelope{}, invalid("has unknown key(s) %s", strings.Join(unknown, ", "))
	}
	str := func(k string) (string, error) {
		v, ok := m[k]
		if !ok {
			return "", invalid("is missing %q", k)
		}
		s, ok := v.(string)
		if !ok {
			return "", invalid("field %q is a %s, want a string", k, typeName(v))
		}
		return s, nil
	}
	ver, err := str(KeyVersion)
	if err != nil {
		return Envelope{}, err
	}
	if ver != Version {
		return Envelope{}, invalid("has version %q; this build reads only %q (upgrade moltbot)", clip(ver), Version)
	}
	alg, err := str(KeyAlg)
	if err != nil {
		return Envelope{}, err
	}
	if alg != AlgAES256GCM {
		return Envelope{}, invalid("has algorithm %q; only %q is supported", clip(alg), AlgAES256GCM)
	}
	kid, err := str(KeyKID)
	if err != nil {
		return Envelope{}, err
	}
	n64, err := str(KeyNonce)
	if err != nil {
		return Envelope{}, err
	}
	c64, err := str(KeyCT)
	if err != nil {
		return Envelope{}, err
	}
	nonce, err := base64.StdEncoding.Strict().DecodeString(n64)
	if err != nil {
		return Envelope{}, invalid("field %q is not valid base64: %v", KeyNonce, err)
	}
	ct, err := base64.StdEncoding.Strict().DecodeString(c64)
	if err != nil {
		return Envelope{}, invalid("field %q is not valid base64: %v", KeyCT, err)
	}
	e := Envelope{KID: kid, Nonce: nonce, CT: ct}
	if err := e.validate(); err != nil {
		return Envelope{}, err
	}
	return e, nil
}

// IsEnvelope reports whether v has the shape of an envelope (an object, or
// JSON text of an object, carrying "$enc"). It does not validate: callers
// that find one must Decode it and report the error, not treat it as plain text.
func IsEnvelope(v any) bool {
	switch t := v.(type) {
	case map[string]any:
		_, ok := t[KeyVersion]
		return ok
	case string:
		s := strings.TrimSpace(t)
		if !strings.HasPrefix(s, "{") || !strings.Contains(s, `"$enc"`) {
			return false
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			return false
		}
		_, ok := m[KeyVersion]
		return ok
	}
	return false
}

func (e Envelope) validate() error {
	if e.KID == "" {
		return invalid("has an empty key id")
	}
	if len(e.KID) > 64 || !printable(e.KID) {
		return invalid("has a malformed key id")
	}
	if len(e.Nonce) != NonceSize {
		return invalid("nonce is %d bytes, want %d", len(e.Nonce), NonceSize)
	}
	if len(e.CT) < TagSize {
		return invalid("ciphertext is %d bytes, shorter than the %d-byte GCM tag (truncated?)", len(e.CT), TagSize)
	}
	return nil
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x21 || r > 0x7e {
			return false
		}
	}
	return true
}

// clip keeps attacker-supplied text short inside an error message.
func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "boolean"
	case float64, json.Number:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("envelope "+format+": %w", append(args, errs.ErrInvalidArgument)...)
}

// Equal reports whether two envelopes are byte-identical.
func (e Envelope) Equal(o Envelope) bool {
	return e.KID == o.KID && bytes.Equal(e.Nonce, o.Nonce) && bytes.Equal(e.CT, o.CT)
}

// decodeFast decodes a well-formed envelope without encoding/json: plain
// ASCII without escapes, exactly the five known keys (exact spelling: a key
// encoding/json would match case-insensitively, like "KID", is unknown here
// and takes the strict path, which refuses it), string values only.
func decodeFast(text string) (Envelope, bool) {
	for i := 0; i < len(text); i++ {
		if text[i] >= 0x80 || text[i] == '\\' {
			return Envelope{}, false
		}
	}
	w, ok := scanFlat(text)
	if !ok || w[KeyVersion] != Version || w[KeyAlg] != AlgAES256GCM {
		return Envelope{}, false
	}
	nonce, err := base64.StdEncoding.Strict().DecodeString(w[KeyNonce])
	if err != nil {
		return Envelope{}, false
	}
	ct, err := base64.StdEncoding.Strict().DecodeString(w[KeyCT])
	if err != nil {
		return Envelope{}, false
	}
	e := Envelope{KID: w[KeyKID], Nonce: nonce, CT: ct}
	if e.validate() != nil {
		return Envelope{}, false
	}
	return e, true
}

// scanFlat reads `{"k":"v", ...}` with exactly the five known keys, each
// once, string values only, no escapes (the caller checked the text is
// ASCII without backslashes) and JSON whitespace between tokens. Anything
// else returns false and takes the strict encoding/json path, so the fast
// path can only accept what the strict path accepts (FuzzDecode checks).
// Profiles of secretsd put encoding/json at ~14 % of a Decrypt call.
func scanFlat(s string) (map[string]string, bool) {
	i := 0
	ws := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
			i++
		}
	}
	str := func() (string, bool) {
		if i >= len(s) || s[i] != '"' {
			return "", false
		}
		j := strings.IndexByte(s[i+1:], '"')
		if j < 0 {
			return "", false
		}
		v := s[i+1 : i+1+j]
		for k := 0; k < len(v); k++ {
			if v[k] < 0x20 { // control characters are invalid in JSON strings
				return "", false
			}
		}
		i += j + 2
		return v, true
	}
	out := make(map[string]string, len(knownKeys))
	ws()
	if i >= len(s) || s[i] != '{' {
		return nil, false
	}
	i++
	for {
		ws()
		k, ok := str()
		if !ok || !knownKeys[k] {
			return nil, false
		}
		if _, dup := out[k]; dup {
			return nil, false
		}
		ws()
		if i >= len(s) || s[i] != ':' {
			return nil, false
		}
		i++
		ws()
		v, ok := str()
		if !ok {
			return nil, false
		}
		out[k] = v
		ws()
		if i >= len(s) {
			return nil, false
		}
		if s[i] == ',' {
			i++
			continue
		}
		if s[i] != '}' {
			return nil, false
		}
		i++
		ws()
		return out, i == len(s) && len(out) == len(knownKeys)
	}
}
