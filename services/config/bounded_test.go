package config

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/errs"
)

func nested(depth int, open, close string, inner string) string {
	return strings.Repeat(open, depth) + inner + strings.Repeat(close, depth)
}

func TestCheckText(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want string // "" = accepted; else a substring of the error
	}{
		{"depth at the limit", nested(64, "[", "]", "1"), 0, ""},
		{"depth one over", nested(65, "[", "]", "1"), 0, "value nests 65 deep; the limit is 64"},
		{"objects 50000 deep", nested(50000, `{"a":`, "}", "1"), 0, "value nests 50000 deep; the limit is 64"},
		{"brackets in strings do not count", `{"a": "` + strings.Repeat("[{", 100) + `"}`, 0, ""},
		{"brackets in comments do not count", "{// " + strings.Repeat("[", 100) + "\n a: 1 /* {{{{ */}", 0, ""},
		{"duplicate key", `{"a": 1, "b": 2, "a": 3}`, 0, `key "a" appears twice`},
		{"duplicate unquoted and quoted", `{a: 1, 'a': 2}`, 0, `key "a" appears twice`},
		{"duplicate through an escape", `{"a": 1, "\u0061": 2}`, 0, `key "a" appears twice`},
		{"same key in sibling objects", `{"x": {"a": 1}, "y": {"a": 2}, "a": [{"a": 1}, {"a": 2}]}`, 0, ""},
		{"same key after a nested object closes", `{"a": {"b": 1}, "b": 2}`, 0, ""},
		{"string values are not keys", `{"a": "a", "b": "a"}`, 0, ""},
		{"duplicate deep inside", nested(10, `{"k":`, "}", `{"z":1,"z":2}`), 0, `key "z" appears twice`},
		{"invalid UTF-8", "{\"a\": \"\xff\"}", 0, "not valid UTF-8"},
		{"over size", `{"a": "` + strings.Repeat("x", 100) + `"}`, 64, "is 109 bytes; the limit is 64 bytes"},
		{"exactly the size", `{"a": "xxxxxxx"}`, 16, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckText([]byte(tt.in), Text{Where: "w", Noun: "value", MaxBytes: tt.max})
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.want)
			require.True(t, strings.HasPrefix(err.Error(), "w"), "names where: %v", err)
			require.ErrorIs(t, err, errs.ErrInvalidArgument)
			var le *LimitError
			require.ErrorAs(t, err, &le)
		})
	}
}

// A 50,000-deep value must cost microseconds, not the seconds and
// gigabytes the decoder would spend on it.
func TestDeepValueIsCheap(t *testing.T) {
	deep := []byte(nested(50000, `{"a":`, "}", "1"))
	start := time.Now()
	for range 10 {
		require.Error(t, CheckText(deep, Text{Where: "w"}))
	}
	require.Less(t, time.Since(start)/10, 50*time.Millisecond)
	allocs := testing.AllocsPerRun(5, func() { _ = CheckText(deep, Text{Where: "w"}) })
	require.Less(t, allocs, 200.0, "memory must be bounded by MaxDepth frames, not by the input's depth")
}

func TestParseBounds(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"deep file", []byte(`{"agents": ` + nested(50000, "[", "]", "") + `}`), "m.json:1: file nests 50001 deep; the limit is 64"},
		{"duplicate top-level key", []byte("{\n gateway: {},\n gateway: {}\n}"), `m.json:3: key "gateway" appears twice`},
		{"invalid UTF-8", []byte("{\n\"logging\": \"\xc3\x28\"}"), "m.json:2: file is not valid UTF-8"},
		{"over 4 MiB", append(append([]byte(`{"x": "`), bytes.Repeat([]byte("a"), MaxFileBytes)...), `"}`...), "the limit is 4 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("m.json", tt.in)
			require.ErrorContains(t, err, tt.want)
			require.ErrorIs(t, err, errs.ErrInvalidArgument)
		})
	}
}

func TestSetStringBounds(t *testing.T) {
	tests := []struct {
		name, path, value, want string
	}{
		{"50000 deep", "agents.list", nested(50000, `{"a":`, "}", "1"), "config set agents.list: value nests 50000 deep; the limit is 62 below agents.list, 64 for the whole file (flatten the structure)"},
		{"just fits", "agents.list", nested(62, "[", "]", ""), ""},
		{"one over below the path", "agents.list", nested(63, "[", "]", ""), "value nests 63 deep; the limit is 62"},
		{"duplicate key", "agents.list", `{a: 1, a: 2}`, `key "a" appears twice`},
		{"over 1 MiB", "agents.list", `"` + strings.Repeat("a", MaxValueBytes) + `"`, "value is 1048578 bytes; the limit is 1 MiB"},
		{"string over 1 MiB", "gateway.bind", strings.Repeat("a", MaxValueBytes+1), "the limit is 1 MiB"},
		{"path too long", strings.Repeat("agents.", 63) + "x", "1", "path has 64 segments; the limit is 63"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New("m.json", nil)
			err := c.SetString(tt.path, tt.value)
			if tt.want == "" {
				require.NoError(t, err)
				_, err := c.Marshal()
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.want)
			require.ErrorIs(t, err, errs.ErrInvalidArgument)
		})
	}
}

func TestSetTreeBounds(t *testing.T) {
	var deep any = 1.0
	for range 100 {
		deep = map[string]any{"a": deep}
	}
	c := New("m.json", nil)
	err := c.Set("agents.list", deep)
	require.ErrorContains(t, err, "config set agents.list: value nests more than 62 deep")
	_, ok := GetIn(c.Raw, []string{"agents", "x"})
	require.False(t, ok, "nothing stored on refusal")
}

// The written file must load again: a value that indentation blows past the
// file limit is refused at Marshal, before any write.
func TestMarshalRefusesAnUnloadableFile(t *testing.T) {
	c := New("m.json", nil)
	wide := "[" + strings.Repeat(nested(30, "[", "]", "1")+",", 15000) + "1]"
	require.Less(t, len(wide), MaxValueBytes)
	require.NoError(t, c.SetString("agents.list", wide))
	_, err := c.Marshal()
	require.ErrorContains(t, err, "once written; the limit is 4 MiB")
}

func TestReadBounded(t *testing.T) {
	tests := []struct {
		name string
		n    int
		ok   bool
	}{
		{"empty", 0, true},
		{"at the limit", 1024, true},
		{"one over", 1025, false},
		{"far over", 1 << 20, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := ReadBounded(bytes.NewReader(bytes.Repeat([]byte("a"), tt.n)), Text{Where: "stdin", Noun: "value", MaxBytes: 1024})
			if tt.ok {
				require.NoError(t, err)
				require.Len(t, b, tt.n)
				return
			}
			require.Nil(t, b, "never a truncated value")
			require.EqualError(t, err, "stdin: value is over 1 KiB; the limit is 1 KiB (make it smaller)")
			require.True(t, errors.Is(err, errs.ErrInvalidArgument))
		})
	}
}

// FuzzSetString drives the `config set` path (the one that crashed a
// gateway): whatever the value, SetString answers quickly, and what it
// stores still marshals into a file that Parse accepts.
func FuzzSetString(f *testing.F) {
	f.Add("agents.list", nested(50000, `{"a":`, "}", "1"))
	f.Add("agents.list", nested(62, "[", "]", "1"))
	f.Add("tools", `{"exec": 1, "exec": 2}`)
	f.Add("tools", "["+strings.Repeat(`{"a": [1, 2]},`, 5000)+"1]")
	f.Add("gateway.port", "18789")
	f.Add("channels.local.dm.allowFrom", `["a", "b"]`)
	f.Fuzz(func(t *testing.T, path, value string) {
		c := New("m.json", nil)
		start := time.Now()
		err := c.SetString(path, value)
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("SetString took %v", d)
		}
		if err != nil {
			require.ErrorIs(t, err, errs.ErrInvalidArgument)
			return
		}
		out, err := c.Marshal()
		var le *LimitError
		if errors.As(err, &le) {
			return
		}
		require.NoError(t, err)
		_, err = Parse("m.json", out)
		require.NoError(t, err, "a stored value must load again")
	})
}
