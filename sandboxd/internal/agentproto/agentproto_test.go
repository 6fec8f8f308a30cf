package agentproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRequestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		req  Request
	}{
		{"ping", Request{Kind: KindPing, ID: 7}},
		{"exec", Request{Kind: KindExec, ID: 1 << 40, Exec: &Exec{
			Argv: []string{"/bin/sh", "-c", "echo hi"}, Stdin: []byte{0, 0xff, 'x'},
			Timeout: 1500 * time.Millisecond, OutputCap: 4096}}},
		{"exec and measure", Request{Kind: KindExec, ID: 2, Exec: &Exec{
			Argv: []string{"true"}, Stdin: []byte{}, Timeout: time.Second, OutputCap: 1, Measure: "/workspace"}}},
		{"usage", Request{Kind: KindUsage, ID: 3, Path: "/workspace"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := EncodeRequest(tt.req)
			require.NoError(t, err)
			got, err := DecodeRequest(p)
			require.NoError(t, err)
			require.Equal(t, tt.req.Kind, got.Kind)
			require.Equal(t, tt.req.ID, got.ID)
			require.Equal(t, tt.req.Path, got.Path)
			if tt.req.Exec != nil {
				require.Equal(t, tt.req.Exec.Measure, got.Exec.Measure)
				require.Equal(t, tt.req.Exec.Argv, got.Exec.Argv)
				require.Equal(t, tt.req.Exec.Stdin, got.Exec.Stdin)
				require.Equal(t, tt.req.Exec.Timeout, got.Exec.Timeout)
				require.Equal(t, tt.req.Exec.OutputCap, got.Exec.OutputCap)
			}
		})
	}
}

func TestEncodeRequestRejects(t *testing.T) {
	ok := Exec{Argv: []string{"true"}, Timeout: time.Second, OutputCap: 10}
	tests := []struct {
		name string
		mod  func(e *Exec)
	}{
		{"no argv", func(e *Exec) { e.Argv = nil }},
		{"empty argv0", func(e *Exec) { e.Argv = []string{""} }},
		{"nul in arg", func(e *Exec) { e.Argv = []string{"a\x00b"} }},
		{"zero timeout", func(e *Exec) { e.Timeout = 0 }},
		{"huge timeout", func(e *Exec) { e.Timeout = 2 * time.Hour }},
		{"zero cap", func(e *Exec) { e.OutputCap = 0 }},
		{"huge cap", func(e *Exec) { e.OutputCap = MaxOutputCap + 1 }},
		{"huge stdin", func(e *Exec) { e.Stdin = make([]byte, MaxStdin+1) }},
		{"relative measure path", func(e *Exec) { e.Measure = "workspace" }},
		{"unclean measure path", func(e *Exec) { e.Measure = "/workspace/../etc" }},
		{"measure path with NUL", func(e *Exec) { e.Measure = "/work\x00space" }},
		{"huge measure path", func(e *Exec) { e.Measure = "/" + strings.Repeat("a", MaxPath) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := ok
			tt.mod(&e)
			_, err := EncodeRequest(Request{Kind: KindExec, ID: 1, Exec: &e})
			require.ErrorIs(t, err, ErrProtocol)
		})
	}
	for _, req := range []Request{
		{Kind: KindUsage},
		{Kind: KindUsage, Path: "rel"},
		{Kind: KindUsage, Path: "/w", Exec: &ok},
		{Kind: KindPing, Path: "/w"},
		{Kind: KindExec, Path: "/w", Exec: &ok},
	} {
		_, err := EncodeRequest(req)
		require.ErrorIs(t, err, ErrProtocol, "%+v", req)
	}
}

func TestResponseRoundTrip(t *testing.T) {
	tests := []Response{
		{Kind: KindPong, ID: 3},
		{Kind: KindError, ID: 4, Message: "busy"},
		{Kind: KindResult, ID: 5, Result: &Result{ExitCode: 137, Signal: 9, Flags: FlagSignaled | FlagOOM,
			Duration: 1234 * time.Microsecond, Stdout: []byte("out\xff"), Stderr: []byte{}, Usage: -1}},
		{Kind: KindResult, ID: 6, Result: &Result{Stdout: []byte{}, Stderr: []byte{}, Usage: 1 << 40}},
		{Kind: KindResult, ID: 7, Result: &Result{Stdout: []byte{}, Stderr: []byte{}, Usage: -1, UsageErr: "read directory \"d\": permission denied"}},
		{Kind: KindSize, ID: 8, Usage: 4096},
		{Kind: KindSize, ID: 9},
	}
	for _, resp := range tests {
		p, err := EncodeResponse(resp)
		require.NoError(t, err)
		got, err := DecodeResponse(p)
		require.NoError(t, err)
		require.Equal(t, resp.Kind, got.Kind)
		require.Equal(t, resp.ID, got.ID)
		require.Equal(t, resp.Message, got.Message)
		require.Equal(t, resp.Usage, got.Usage)
		if resp.Result != nil {
			require.Equal(t, *resp.Result, *got.Result)
		}
	}
}

func TestDecodeResponseRejects(t *testing.T) {
	good, err := EncodeResponse(Response{Kind: KindResult, ID: 1, Result: &Result{Stdout: []byte("ab")}})
	require.NoError(t, err)
	tests := []struct {
		name string
		p    []byte
	}{
		{"empty", nil},
		{"short id", []byte{byte(KindPong), 1, 2}},
		{"unknown kind", append([]byte{0x99}, make([]byte, 8)...)},
		{"trailing", append(append([]byte{}, good...), 0)},
		{"truncated", good[:len(good)-1]},
		{"bad flags", func() []byte { b := append([]byte{}, good...); b[1+8+4+1] = 0x80; return b }()},
		{"usage below -1", func() []byte {
			b := append([]byte{}, good...)
			binary.BigEndian.PutUint64(b[len(b)-10:], uint64(1<<64-2))
			return b
		}()},
		{"negative size", binary.BigEndian.AppendUint64(append([]byte{byte(KindSize)}, make([]byte, 8)...), 1<<63)},
		{"short size", append([]byte{byte(KindSize)}, make([]byte, 8+4)...)},
		{"huge usage error", func() []byte {
			b := append([]byte{}, good[:len(good)-2]...)
			return binary.BigEndian.AppendUint16(b, MaxErrorMessage+1)
		}()},
		{"huge stdout len", func() []byte {
			b := append([]byte{}, good[:1+8+4+1+1+4]...)
			return binary.BigEndian.AppendUint32(b, MaxOutputCap+1)
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeResponse(tt.p)
			require.ErrorIs(t, err, ErrProtocol)
		})
	}
}

func TestReadFrame(t *testing.T) {
	var buf bytes.Buffer
	buf.Write(AppendFrame(nil, []byte("hello")))
	p, err := ReadFrame(&buf, 16)
	require.NoError(t, err)
	require.Equal(t, "hello", string(p))

	_, err = ReadFrame(bytes.NewReader(AppendFrame(nil, make([]byte, 17))), 16)
	require.ErrorIs(t, err, ErrProtocol)
	_, err = ReadFrame(bytes.NewReader([]byte{0, 0, 0, 0}), 16)
	require.ErrorIs(t, err, ErrProtocol)
	_, err = ReadFrame(bytes.NewReader([]byte{0, 0, 0, 5, 'a'}), 16)
	require.True(t, errors.Is(err, io.ErrUnexpectedEOF))
	_, err = ReadFrame(bytes.NewReader(nil), 16)
	require.ErrorIs(t, err, io.EOF)
}

func FuzzDecodeRequest(f *testing.F) {
	p, _ := EncodeRequest(Request{Kind: KindExec, ID: 1, Exec: &Exec{Argv: []string{"sh", "-c", "x"}, Stdin: []byte("in"), Timeout: time.Second, OutputCap: 100}})
	f.Add(p)
	f.Fuzz(func(t *testing.T, p []byte) {
		req, err := DecodeRequest(p)
		if err != nil {
			return
		}
		again, err := EncodeRequest(req)
		if err != nil {
			t.Fatalf("decoded request does not re-encode: %v", err)
		}
		if !bytes.Equal(again, p) {
			t.Fatalf("round trip changed the payload")
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	p, _ := EncodeResponse(Response{Kind: KindResult, ID: 9, Result: &Result{ExitCode: 1, Stdout: []byte("o"), Stderr: []byte("e")}})
	f.Add(p)
	f.Fuzz(func(t *testing.T, p []byte) {
		resp, err := DecodeResponse(p)
		if err != nil {
			return
		}
		again, err := EncodeResponse(resp)
		if err != nil {
			t.Fatalf("decoded response does not re-encode: %v", err)
		}
		if !bytes.Equal(again, p) {
			t.Fatalf("round trip changed the payload")
		}
	})
}
