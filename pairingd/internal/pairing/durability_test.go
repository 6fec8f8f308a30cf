package pairing

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/pairingd/internal/store"
)

const crashEnv = "PAIRING_CRASH_CHILD_DB"

// TestCrashChild is the child half of TestKill9Durability: it pairs senders
// as fast as it can and reports each one only after Approve has returned,
// until the parent SIGKILLs it.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("child process of TestKill9Durability only")
	}
	st, err := store.Open(path)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	s, err := New(Config{Store: st, MaxPending: 1 << 20})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	ctx := context.Background()
	prefix := os.Getenv(crashEnv + "_ROUND")
	out := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		ch := fmt.Sprintf("ch%d", i%7)
		id := fmt.Sprintf("%ss%d", prefix, i)
		r, err := s.Request(ctx, ch, id, nil)
		if err != nil {
			fmt.Fprintln(out, "ERR", err)
			_ = out.Flush()
			os.Exit(2)
		}
		// Every third sender stays pending: its code must survive too.
		if i%3 == 0 {
			fmt.Fprintf(out, "pending %s %s %s\n", ch, id, r.Code)
			_ = out.Flush()
			continue
		}
		if _, err := s.Approve(ctx, "cli", ch, r.Code); err != nil {
			fmt.Fprintln(out, "ERR", err)
			_ = out.Flush()
			os.Exit(2)
		}
		fmt.Fprintf(out, "approved %s %s\n", ch, id)
		_ = out.Flush()
	}
}

func TestKill9Durability(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	db := filepath.Join(t.TempDir(), "credentials", "pairing.db")
	for round := 0; round < 2; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+db, fmt.Sprintf("%s_ROUND=r%d-", crashEnv, round))
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())

		var approved, pending [][]string
		sc := bufio.NewScanner(stdout)
		deadline := time.Now().Add(20 * time.Second)
		for sc.Scan() && len(approved) < 150 && time.Now().Before(deadline) {
			f := strings.Fields(sc.Text())
			require.NotEqual(t, "ERR", f[0], sc.Text())
			if f[0] == "approved" {
				approved = append(approved, f[1:])
			} else if f[0] == "pending" {
				pending = append(pending, f[1:])
			}
		}
		// Kill mid-stream: the child is still writing.
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		require.NotEmpty(t, approved)

		st, err := store.Open(db)
		require.NoError(t, err, "the database opens cleanly after kill -9")
		s, err := New(Config{Store: st, MaxPending: 1 << 20})
		require.NoError(t, err)
		ctx := context.Background()
		for _, a := range approved {
			ok, err := s.IsAllowed(ctx, a[0], a[1])
			require.NoError(t, err)
			require.True(t, ok, "approved sender %v lost after kill -9", a)
		}
		// A code handed out before the crash still works after it.
		last := pending[len(pending)-1]
		res, err := s.Approve(ctx, "cli", last[0], last[2])
		require.NoError(t, err)
		require.Equal(t, last[1], res.SenderID)
		t.Logf("round %d: %d approvals and %d pending codes survived SIGKILL", round, len(approved), len(pending))
		require.NoError(t, st.Close())
	}
}
