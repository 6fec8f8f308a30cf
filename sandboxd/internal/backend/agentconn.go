package backend

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/moltbot/moltbot-secure/sandboxd/internal/agentproto"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// agentConn is the one attach stream to a container's agent. Requests are
// matched to replies by id; a reply that breaks the protocol ends the
// connection, since the agent's output is untrusted.
type agentConn struct {
	id  string
	hr  client.HijackedResponse
	log hclog.Logger

	wmu sync.Mutex

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan agentproto.Response
	broken  error
	done    chan struct{}
	stderr  *tailBuffer
}

func newAgentConn(id string, hr client.HijackedResponse, log hclog.Logger) *agentConn {
	c := &agentConn{id: id, hr: hr, log: log, pending: map[uint64]chan agentproto.Response{},
		done: make(chan struct{}), stderr: &tailBuffer{max: 4096}}
	go c.readLoop()
	return c
}

func (c *agentConn) readLoop() {
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, c.stderr, c.hr.Reader)
		if err == nil {
			err = io.EOF
		}
		pw.CloseWithError(err)
	}()
	br := bufio.NewReaderSize(pr, 64<<10)
	for {
		p, err := agentproto.ReadFrame(br, agentproto.MaxResponseFrame)
		if err != nil {
			c.fail(fmt.Errorf("agent stream ended: %w", err))
			_ = pr.CloseWithError(err)
			return
		}
		resp, err := agentproto.DecodeResponse(p)
		if err != nil {
			c.fail(err)
			_ = pr.CloseWithError(err)
			return
		}
		c.mu.Lock()
		ch := c.pending[resp.ID]
		delete(c.pending, resp.ID)
		c.mu.Unlock()
		if ch == nil {
			c.log.Warn("sandbox agent replied to an unknown request", "container", c.id[:12], "id", resp.ID)
			continue
		}
		ch <- resp
	}
}

// fail marks the connection broken and wakes every waiter.
func (c *agentConn) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return
	}
	if tail := c.stderr.String(); tail != "" {
		err = fmt.Errorf("%w (agent stderr: %q)", err, tail)
	}
	c.broken = err
	close(c.done)
	c.hr.Close()
}

func (c *agentConn) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken
}

func (c *agentConn) close() { c.fail(errors.New("agent connection closed")) }

func (c *agentConn) ping(ctx context.Context) error {
	resp, err := c.roundTrip(ctx, agentproto.Request{Kind: agentproto.KindPing}, 0)
	if err != nil {
		return err
	}
	if resp.Kind != agentproto.KindPong {
		return fmt.Errorf("agent answered ping with kind %#x: %w", resp.Kind, agentproto.ErrProtocol)
	}
	return nil
}

func (c *agentConn) call(ctx context.Context, e *agentproto.Exec, wait time.Duration) (agentproto.Response, error) {
	resp, err := c.roundTrip(ctx, agentproto.Request{Kind: agentproto.KindExec, Exec: e}, wait)
	if err != nil {
		return resp, err
	}
	if resp.Kind != agentproto.KindResult && resp.Kind != agentproto.KindError {
		c.fail(fmt.Errorf("agent answered exec with kind %#x: %w", resp.Kind, agentproto.ErrProtocol))
		return agentproto.Response{}, fmt.Errorf("container %.12s: bad agent reply: %w", c.id, ErrContainerGone)
	}
	return resp, nil
}

// usage asks the agent for the disk usage under path.
func (c *agentConn) usage(ctx context.Context, path string, wait time.Duration) (int64, error) {
	resp, err := c.roundTrip(ctx, agentproto.Request{Kind: agentproto.KindUsage, Path: path}, wait)
	if err != nil {
		return 0, err
	}
	switch resp.Kind {
	case agentproto.KindSize:
		return resp.Usage, nil
	case agentproto.KindError:
		return 0, measureError(resp.Message)
	}
	c.fail(fmt.Errorf("agent answered a usage request with kind %#x: %w", resp.Kind, agentproto.ErrProtocol))
	return 0, fmt.Errorf("container %.12s: bad agent reply: %w", c.id, ErrContainerGone)
}

// measureError is a failed measurement as the agent reported it (quoted:
// the text comes from inside the sandbox).
func measureError(msg string) error {
	return fmt.Errorf("workspace could not be measured: %q: %w", msg, errs.ErrFailedPrecondition)
}

func (c *agentConn) roundTrip(ctx context.Context, req agentproto.Request, wait time.Duration) (agentproto.Response, error) {
	ch := make(chan agentproto.Response, 1)
	c.mu.Lock()
	if c.broken != nil {
		err := c.broken
		c.mu.Unlock()
		return agentproto.Response{}, fmt.Errorf("container %.12s: %v: %w (%w)", c.id, err, ErrContainerGone, ErrNotSent)
	}
	c.nextID++
	req.ID = c.nextID
	c.pending[req.ID] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, req.ID)
		c.mu.Unlock()
	}

	p, err := agentproto.EncodeRequest(req)
	if err != nil {
		forget()
		return agentproto.Response{}, fmt.Errorf("encode agent request: %v: %w", err, errs.ErrInvalidArgument)
	}
	c.wmu.Lock()
	_, err = c.hr.Conn.Write(agentproto.AppendFrame(nil, p))
	c.wmu.Unlock()
	if err != nil {
		forget()
		c.fail(err)
		return agentproto.Response{}, fmt.Errorf("container %.12s: write to agent: %v: %w (%w)", c.id, err, ErrContainerGone, ErrNotSent)
	}
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case resp := <-ch:
		return resp, nil
	case <-c.done:
		forget()
		return agentproto.Response{}, fmt.Errorf("container %.12s: %v: %w", c.id, c.err(), ErrContainerGone)
	case <-timeout:
		forget()
		// The agent enforces the timeout itself; silence past it means the
		// container is wedged (fork bomb, frozen agent).
		c.fail(errors.New("agent did not answer in time"))
		return agentproto.Response{}, fmt.Errorf("container %.12s: agent did not answer within %s: %w", c.id, wait, ErrContainerGone)
	case <-ctx.Done():
		forget()
		return agentproto.Response{}, fmt.Errorf("waiting for sandbox agent: %w", ctx.Err())
	}
}

// tailBuffer keeps the last max bytes written (the agent's stderr, for errors).
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
