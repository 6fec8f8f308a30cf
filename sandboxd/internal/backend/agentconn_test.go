package backend

import (
	"bufio"
	"context"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/sandboxd/internal/agentproto"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// fakeAgentConn is an agentConn whose other end answers every request
// with an error reply carrying msg, as an agent would.
func fakeAgentConn(t *testing.T, msg string) *agentConn {
	t.Helper()
	ours, theirs := net.Pipe()
	t.Cleanup(func() { _ = ours.Close(); _ = theirs.Close() })
	go func() {
		for {
			p, err := agentproto.ReadFrame(theirs, agentproto.MaxRequestFrame)
			if err != nil {
				return
			}
			id := uint64(0)
			for _, b := range p[1:9] {
				id = id<<8 | uint64(b)
			}
			reply, _ := agentproto.EncodeResponse(agentproto.Response{Kind: agentproto.KindError, ID: id, Message: msg})
			// Docker's multiplexed stream: stdout (1), three zero bytes,
			// the big-endian length, the bytes.
			f := agentproto.AppendFrame(nil, reply)
			hdr := []byte{1, 0, 0, 0, 0, 0, 0, 0}
			binary.BigEndian.PutUint32(hdr[4:], uint32(len(f)))
			if _, err := theirs.Write(append(hdr, f...)); err != nil {
				return
			}
		}
	}()
	return newAgentConn("0123456789abcdef", client.HijackedResponse{Conn: ours, Reader: bufio.NewReader(ours)}, hclog.NewNullLogger())
}

// An agent that cannot read the request (another protocol version: a
// container from before an upgrade) ran nothing, so the container is
// replaced and the command run once more (ErrContainerGone + ErrNotSent);
// any other refusal is reported as such.
func TestAgentRefusalsMapped(t *testing.T) {
	d := &Docker{}
	spec := ExecSpec{Argv: []string{"true"}, Timeout: time.Second, OutputCap: 10, Measure: "/workspace"}
	_, err := d.execAgent(context.Background(), fakeAgentConn(t, "agent protocol error: 12 trailing bytes"), spec)
	require.ErrorIs(t, err, ErrContainerGone)
	require.ErrorIs(t, err, ErrNotSent)
	require.ErrorContains(t, err, "another protocol version")

	_, err = d.execAgent(context.Background(), fakeAgentConn(t, "agent busy: too many requests in flight"), spec)
	require.ErrorIs(t, err, errs.ErrFailedPrecondition)
	require.NotErrorIs(t, err, ErrContainerGone)
}
