package agentproto

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReadFrames reads a byte stream as the agent reads stdin (and sandboxd
// the agent's stdout): frame after frame until an error. No panic; no
// payload over the limit or empty; no allocation beyond the bytes that
// actually arrived plus one frame limit; every frame read re-encodes to the
// bytes consumed.
func FuzzReadFrames(f *testing.F) {
	req, _ := EncodeRequest(Request{Kind: KindExec, ID: 1, Exec: &Exec{Argv: []string{"true"}, OutputCap: 10}})
	f.Add(AppendFrame(AppendFrame(nil, req), []byte("x")), uint16(64))
	f.Add([]byte{0, 0, 0, 0}, uint16(16))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1}, uint16(16))
	f.Add([]byte{0, 0, 0, 5, 'a'}, uint16(16))
	f.Fuzz(func(t *testing.T, stream []byte, limit uint16) {
		maxLen := int(limit) + 1
		r := bytes.NewReader(stream)
		var rebuilt []byte
		for {
			before := r.Len()
			p, err := ReadFrame(r, maxLen)
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrProtocol) {
					t.Fatalf("unexpected error class: %v", err)
				}
				if errors.Is(err, io.EOF) && before != 0 {
					t.Fatalf("clean EOF reported with %d bytes left", before)
				}
				break
			}
			if len(p) == 0 || len(p) > maxLen {
				t.Fatalf("payload of %d bytes outside 1..%d", len(p), maxLen)
			}
			rebuilt = AppendFrame(rebuilt, p)
		}
		if !bytes.HasPrefix(stream, rebuilt) {
			t.Fatalf("frames read do not re-encode to the stream's prefix")
		}
	})
}
