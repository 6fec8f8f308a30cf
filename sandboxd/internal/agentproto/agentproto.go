// Package agentproto is the framed protocol between sandboxd and the exec
// agent that runs as PID 1 of each sandbox, over the container's attach stream.
//
// A frame is a 4-byte big-endian payload length followed by the payload. A
// payload is one kind byte, an 8-byte request id and a kind-specific body of
// fixed-width big-endian integers and length-prefixed byte strings. Binary, not
// JSON, because command output is bytes, not text.
//
// Replies come from a process that sandbox code may have tampered with, so the
// decoders are strict: every length is bounded before any allocation, unknown
// kinds and flags are refused and trailing bytes are an error.
package agentproto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
)

// Kind identifies a payload.
type Kind uint8

// Request kinds (sandboxd -> agent) and response kinds (agent -> sandboxd).
const (
	KindExec   Kind = 0x01
	KindPing   Kind = 0x02
	KindUsage  Kind = 0x03
	KindResult Kind = 0x81
	KindPong   Kind = 0x82
	KindError  Kind = 0x83
	KindSize   Kind = 0x84
)

// Bounds. Requests and replies larger than these are refused before allocation.
const (
	MaxArgs         = 1024
	MaxArgvBytes    = 128 << 10
	MaxStdin        = 1 << 20
	MaxOutputCap    = 16 << 20
	MaxTimeout      = time.Hour
	MaxErrorMessage = 4096
	MaxPath         = 4096
	// MaxRequestFrame bounds one request payload.
	MaxRequestFrame = 1 + 8 + 4 + 4 + 2 + MaxArgs*4 + MaxArgvBytes + 4 + MaxStdin + 4 + MaxPath
	// MaxResponseFrame bounds one reply payload: two full output streams,
	// the usage and its error, plus header.
	MaxResponseFrame = 1 + 8 + 4 + 1 + 1 + 4 + 4 + 2*MaxOutputCap + 8 + 2 + MaxErrorMessage
)

// Result flags.
const (
	FlagTruncated   uint8 = 1 << 0
	FlagTimedOut    uint8 = 1 << 1
	FlagOOM         uint8 = 1 << 2
	FlagPidsLimit   uint8 = 1 << 3
	FlagStartFailed uint8 = 1 << 4
	FlagSignaled    uint8 = 1 << 5
	flagsKnown            = FlagTruncated | FlagTimedOut | FlagOOM | FlagPidsLimit | FlagStartFailed | FlagSignaled
)

// ErrProtocol marks a malformed frame or payload.
var ErrProtocol = errors.New("agent protocol error")

// Exec asks the agent to run Argv with Stdin, killing it after Timeout and
// keeping at most OutputCap bytes of each output stream. With Measure set
// (an absolute directory) the agent then measures the disk space used
// under it and returns that with the result: the quota check after every
// command costs no second process and no second round trip.
type Exec struct {
	Argv      []string
	Stdin     []byte
	Timeout   time.Duration
	OutputCap uint32
	Measure   string
}

// Request is one message to the agent. Exec is set for KindExec only, Path
// (an absolute directory to measure) for KindUsage only.
type Request struct {
	Kind Kind
	ID   uint64
	Exec *Exec
	Path string
}

// Result is the outcome of an Exec.
type Result struct {
	ExitCode int32
	Signal   uint8
	Flags    uint8
	// Duration is measured by the agent, in microseconds on the wire.
	Duration time.Duration
	Stdout   []byte
	Stderr   []byte
	// Usage is the bytes used under Exec.Measure after the command, -1 when
	// nothing was asked or the measurement failed (UsageErr says why).
	Usage    int64
	UsageErr string
}

// Response is one message from the agent. Result is set for KindResult,
// Message for KindError and Usage for KindSize.
type Response struct {
	Kind    Kind
	ID      uint64
	Result  *Result
	Message string
	Usage   int64
}

// ReadFrame reads one frame whose payload is at most maxLen bytes.
func ReadFrame(r io.Reader, maxLen int) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || uint64(n) > uint64(maxLen) {
		return nil, fmt.Errorf("%w: frame length %d outside 1..%d", ErrProtocol, n, maxLen)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// AppendFrame appends the length prefix and payload to dst.
func AppendFrame(dst, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

// EncodeRequest validates req and returns its payload.
func EncodeRequest(req Request) ([]byte, error) {
	b := []byte{byte(req.Kind)}
	b = binary.BigEndian.AppendUint64(b, req.ID)
	switch req.Kind {
	case KindPing:
		if req.Exec != nil || req.Path != "" {
			return nil, fmt.Errorf("%w: ping carries no body", ErrProtocol)
		}
		return b, nil
	case KindUsage:
		if req.Exec != nil {
			return nil, fmt.Errorf("%w: usage request carries no exec", ErrProtocol)
		}
		if err := validatePath(req.Path, false); err != nil {
			return nil, err
		}
		return appendBytes(b, []byte(req.Path)), nil
	case KindExec:
		if req.Exec == nil || req.Path != "" {
			return nil, fmt.Errorf("%w: exec request without body, or with a path", ErrProtocol)
		}
		if err := validateExec(req.Exec); err != nil {
			return nil, err
		}
		e := req.Exec
		b = binary.BigEndian.AppendUint32(b, uint32(e.Timeout/time.Millisecond))
		b = binary.BigEndian.AppendUint32(b, e.OutputCap)
		b = binary.BigEndian.AppendUint16(b, uint16(len(e.Argv)))
		for _, a := range e.Argv {
			b = appendBytes(b, []byte(a))
		}
		b = appendBytes(b, e.Stdin)
		b = appendBytes(b, []byte(e.Measure))
		return b, nil
	default:
		return nil, fmt.Errorf("%w: unknown request kind %#x", ErrProtocol, req.Kind)
	}
}

func validateExec(e *Exec) error {
	if len(e.Argv) == 0 || len(e.Argv) > MaxArgs {
		return fmt.Errorf("%w: argv must have 1..%d entries, got %d", ErrProtocol, MaxArgs, len(e.Argv))
	}
	total := 0
	for i, a := range e.Argv {
		total += len(a)
		if strings.IndexByte(a, 0) >= 0 {
			return fmt.Errorf("%w: argv[%d] contains a NUL byte", ErrProtocol, i)
		}
	}
	if e.Argv[0] == "" {
		return fmt.Errorf("%w: argv[0] is empty", ErrProtocol)
	}
	if total > MaxArgvBytes {
		return fmt.Errorf("%w: argv is %d bytes, max %d", ErrProtocol, total, MaxArgvBytes)
	}
	if len(e.Stdin) > MaxStdin {
		return fmt.Errorf("%w: stdin is %d bytes, max %d", ErrProtocol, len(e.Stdin), MaxStdin)
	}
	if e.Timeout < time.Millisecond || e.Timeout > MaxTimeout {
		return fmt.Errorf("%w: timeout %s outside 1ms..%s", ErrProtocol, e.Timeout, MaxTimeout)
	}
	if e.OutputCap == 0 || e.OutputCap > MaxOutputCap {
		return fmt.Errorf("%w: output cap %d outside 1..%d", ErrProtocol, e.OutputCap, MaxOutputCap)
	}
	return validatePath(e.Measure, true)
}

// validatePath checks a directory to measure: absolute, clean, no NUL.
func validatePath(p string, optional bool) error {
	switch {
	case p == "" && optional:
		return nil
	case p == "" || len(p) > MaxPath:
		return fmt.Errorf("%w: path must be 1..%d bytes, got %d", ErrProtocol, MaxPath, len(p))
	case p[0] != '/' || path.Clean(p) != p:
		return fmt.Errorf("%w: path %q is not absolute and clean", ErrProtocol, p)
	case strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("%w: path contains a NUL byte", ErrProtocol)
	}
	return nil
}

// DecodeRequest parses a request payload strictly.
func DecodeRequest(p []byte) (Request, error) {
	d := decoder{b: p}
	kind := Kind(d.u8())
	req := Request{Kind: kind, ID: d.u64()}
	if d.err != nil {
		return Request{}, d.err
	}
	switch kind {
	case KindPing:
	case KindUsage:
		req.Path = string(d.bytes(MaxPath))
		if d.err != nil {
			return Request{}, d.err
		}
		if err := validatePath(req.Path, false); err != nil {
			return Request{}, err
		}
	case KindExec:
		e := &Exec{}
		e.Timeout = time.Duration(d.u32()) * time.Millisecond
		e.OutputCap = d.u32()
		argc := int(d.u16())
		if d.err == nil && (argc == 0 || argc > MaxArgs) {
			return Request{}, fmt.Errorf("%w: argc %d outside 1..%d", ErrProtocol, argc, MaxArgs)
		}
		total := 0
		for i := 0; i < argc && d.err == nil; i++ {
			a := d.bytes(MaxArgvBytes - total)
			total += len(a)
			e.Argv = append(e.Argv, string(a))
		}
		e.Stdin = d.bytes(MaxStdin)
		e.Measure = string(d.bytes(MaxPath))
		if d.err != nil {
			return Request{}, d.err
		}
		if err := validateExec(e); err != nil {
			return Request{}, err
		}
		req.Exec = e
	default:
		return Request{}, fmt.Errorf("%w: unknown request kind %#x", ErrProtocol, kind)
	}
	if err := d.end(); err != nil {
		return Request{}, err
	}
	return req, nil
}

// EncodeResponse returns the payload of resp.
func EncodeResponse(resp Response) ([]byte, error) {
	b := []byte{byte(resp.Kind)}
	b = binary.BigEndian.AppendUint64(b, resp.ID)
	switch resp.Kind {
	case KindPong:
		return b, nil
	case KindError:
		return appendMessage(b, resp.Message), nil
	case KindSize:
		if resp.Usage < 0 {
			return nil, fmt.Errorf("%w: negative size %d", ErrProtocol, resp.Usage)
		}
		return binary.BigEndian.AppendUint64(b, uint64(resp.Usage)), nil
	case KindResult:
		r := resp.Result
		if r == nil {
			return nil, fmt.Errorf("%w: result response without body", ErrProtocol)
		}
		if len(r.Stdout) > MaxOutputCap || len(r.Stderr) > MaxOutputCap {
			return nil, fmt.Errorf("%w: output larger than %d", ErrProtocol, MaxOutputCap)
		}
		if r.Flags&^flagsKnown != 0 {
			return nil, fmt.Errorf("%w: unknown flags %#x", ErrProtocol, r.Flags)
		}
		if r.Usage < -1 {
			return nil, fmt.Errorf("%w: usage %d below -1", ErrProtocol, r.Usage)
		}
		b = binary.BigEndian.AppendUint32(b, uint32(r.ExitCode))
		b = append(b, r.Signal, r.Flags)
		b = binary.BigEndian.AppendUint32(b, uint32(min(r.Duration/time.Microsecond, 1<<32-1)))
		b = appendBytes(b, r.Stdout)
		b = appendBytes(b, r.Stderr)
		b = binary.BigEndian.AppendUint64(b, uint64(r.Usage))
		return appendMessage(b, r.UsageErr), nil
	default:
		return nil, fmt.Errorf("%w: unknown response kind %#x", ErrProtocol, resp.Kind)
	}
}

// DecodeResponse parses a reply payload strictly. The agent is untrusted.
func DecodeResponse(p []byte) (Response, error) {
	d := decoder{b: p}
	kind := Kind(d.u8())
	resp := Response{Kind: kind, ID: d.u64()}
	if d.err != nil {
		return Response{}, d.err
	}
	switch kind {
	case KindPong:
	case KindError:
		resp.Message = d.message()
	case KindSize:
		resp.Usage = int64(d.u64())
		if d.err == nil && resp.Usage < 0 {
			return Response{}, fmt.Errorf("%w: negative size", ErrProtocol)
		}
	case KindResult:
		r := &Result{}
		r.ExitCode = int32(d.u32())
		r.Signal = d.u8()
		r.Flags = d.u8()
		r.Duration = time.Duration(d.u32()) * time.Microsecond
		r.Stdout = d.bytes(MaxOutputCap)
		r.Stderr = d.bytes(MaxOutputCap)
		r.Usage = int64(d.u64())
		r.UsageErr = d.message()
		if d.err == nil && r.Usage < -1 {
			return Response{}, fmt.Errorf("%w: usage %d below -1", ErrProtocol, r.Usage)
		}
		if d.err == nil && r.Flags&^flagsKnown != 0 {
			return Response{}, fmt.Errorf("%w: unknown flags %#x", ErrProtocol, r.Flags)
		}
		if d.err == nil && r.Signal > 64 {
			return Response{}, fmt.Errorf("%w: signal %d out of range", ErrProtocol, r.Signal)
		}
		resp.Result = r
	default:
		return Response{}, fmt.Errorf("%w: unknown response kind %#x", ErrProtocol, kind)
	}
	if d.err != nil {
		return Response{}, d.err
	}
	if err := d.end(); err != nil {
		return Response{}, err
	}
	return resp, nil
}

// appendMessage appends a u16-length string cut to MaxErrorMessage.
func appendMessage(b []byte, msg string) []byte {
	if len(msg) > MaxErrorMessage {
		msg = msg[:MaxErrorMessage]
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(msg)))
	return append(b, msg...)
}

func appendBytes(b, v []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

// decoder reads fixed-width fields; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = fmt.Errorf("%w: field of %d bytes with %d left", ErrProtocol, n, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() uint8 {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u16() uint16 {
	if v := d.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// bytes reads a u32 length and that many bytes, refusing lengths above maxLen.
func (d *decoder) bytes(maxLen int) []byte {
	n := d.u32()
	if d.err != nil {
		return nil
	}
	if uint64(n) > uint64(max(maxLen, 0)) {
		d.err = fmt.Errorf("%w: field of %d bytes, max %d", ErrProtocol, n, maxLen)
		return nil
	}
	v := d.take(int(n))
	if v == nil && d.err == nil {
		v = []byte{}
	}
	return v
}

// message reads a u16-length string of at most MaxErrorMessage bytes.
func (d *decoder) message() string {
	n := int(d.u16())
	if d.err == nil && n > MaxErrorMessage {
		d.err = fmt.Errorf("%w: message of %d bytes, max %d", ErrProtocol, n, MaxErrorMessage)
	}
	return string(d.take(n))
}

func (d *decoder) end() error {
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrProtocol, len(d.b))
	}
	return nil
}
