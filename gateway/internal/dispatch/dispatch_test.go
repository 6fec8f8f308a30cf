package dispatch

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestWithinKeyInOrderAcrossKeysConcurrent(t *testing.T) {
	d, err := New(Limits{Workers: 4, QueueLen: 100})
	require.NoError(t, err)
	var mu sync.Mutex
	got := map[string][]int{}
	var running, peak atomic.Int32
	for i := range 50 {
		for _, k := range []string{"a", "b", "c", "d", "e"} {
			require.NoError(t, d.Submit(k, func() {
				n := running.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				time.Sleep(200 * time.Microsecond)
				mu.Lock()
				got[k] = append(got[k], i)
				mu.Unlock()
				running.Add(-1)
			}))
		}
	}
	d.Close()
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		require.Len(t, got[k], 50, k)
		for i, v := range got[k] {
			require.Equal(t, i, v, "key %s ran out of order", k)
		}
	}
	require.LessOrEqual(t, peak.Load(), int32(4), "more jobs ran at once than Workers")
	require.Greater(t, peak.Load(), int32(1), "keys never ran concurrently")
	q, j := d.Stats()
	require.Zero(t, q, "empty queues are freed")
	require.Zero(t, j)
}

func TestBlockedKeyDoesNotBlockOthers(t *testing.T) {
	d, err := New(Limits{Workers: 2})
	require.NoError(t, err)
	release := make(chan struct{})
	require.NoError(t, d.Submit("slow", func() { <-release }))
	done := make(chan string, 20)
	for i := range 20 {
		k := fmt.Sprint("chat", i)
		require.NoError(t, d.Submit(k, func() { done <- k }))
	}
	for range 20 {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("other keys wait for the blocked one")
		}
	}
	close(release)
	d.Close()
}

func TestBusyWhenQueueFullOrTooManyQueues(t *testing.T) {
	d, err := New(Limits{Workers: 1, QueueLen: 2, MaxQueues: 2})
	require.NoError(t, err)
	release := make(chan struct{})
	block := func() { <-release }
	require.NoError(t, d.Submit("a", block)) // running (or waiting for the worker)
	require.NoError(t, d.Submit("a", block))
	require.NoError(t, d.Submit("a", block))
	require.ErrorIs(t, d.Submit("a", block), ErrBusy, "a third waiting job exceeds QueueLen 2")
	require.NoError(t, d.Submit("b", block))
	require.ErrorIs(t, d.Submit("c", block), ErrBusy, "a third queue exceeds MaxQueues 2")
	q, j := d.Stats()
	require.Equal(t, 2, q)
	require.Equal(t, 4, j)
	close(release)
	d.Close()
	require.ErrorIs(t, d.Submit("a", block), ErrClosed)
	q, _ = d.Stats()
	require.Zero(t, q)
}

func TestCloseWaitsForQueuedJobs(t *testing.T) {
	d, err := New(Limits{Workers: 1})
	require.NoError(t, err)
	var n atomic.Int32
	for range 5 {
		require.NoError(t, d.Submit("k", func() { time.Sleep(time.Millisecond); n.Add(1) }))
	}
	d.Close()
	require.Equal(t, int32(5), n.Load())
}

func TestLimits(t *testing.T) {
	for _, tc := range []struct {
		in   Limits
		want Limits
		err  string
	}{
		{Limits{}, Limits{DefaultWorkers, DefaultQueueLen, DefaultMaxQueues}, ""},
		{Limits{Workers: 3, QueueLen: 1, MaxQueues: 5}, Limits{3, 1, 5}, ""},
		{Limits{Workers: -1}, Limits{}, "gateway.inbound.workers: -1 is out of range"},
		{Limits{QueueLen: 5000}, Limits{}, "gateway.inbound.queuePerSession: 5000 is out of range"},
		{Limits{MaxQueues: -2}, Limits{}, "gateway.inbound.maxSessions: -2"},
	} {
		got, err := tc.in.WithDefaults()
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err)
			_, err = New(tc.in)
			require.ErrorContains(t, err, tc.err)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.want, got)
	}
}
