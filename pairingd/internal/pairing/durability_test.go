package pairing

import (
	"bufio"
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// crashTrials is how many kill -9 trials a crash test runs: about 50 in
// `make test` (it is not skipped by -short: crash safety is checked on every
// run), 1000 in `make soak` (MOLTBOT_SOAK=1), or MOLTBOT_CRASH_TRIALS.
func crashTrials(t *testing.T) int {
	if v := os.Getenv("MOLTBOT_CRASH_TRIALS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "MOLTBOT_CRASH_TRIALS must be a number")
		return n
	}
	if os.Getenv("MOLTBOT_SOAK") == "1" {
		return 1000
	}
	return 50
}

// TestKill9Durability SIGKILLs a pairing child at a random point of its
// work, trial after trial on the same database, and checks after each that
// the database opens, every approval the child reported survived, and a code
// handed out before the crash still approves.
func TestKill9Durability(t *testing.T) {
	db := filepath.Join(t.TempDir(), "credentials", "pairing.db")
	trials := crashTrials(t)
	total := 0
	for round := range trials {
		// Kill after 1 to 40 reported approvals: early and late in a run.
		stopAt := 1 + mrand.IntN(40)
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+db, fmt.Sprintf("%s_ROUND=r%d-", crashEnv, round))
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())

		var approved, pending [][]string
		sc := bufio.NewScanner(stdout)
		deadline := time.Now().Add(20 * time.Second)
		for sc.Scan() && len(approved) < stopAt && time.Now().Before(deadline) {
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
		require.NotEmpty(t, approved, "round %d: the child approved nothing in 20 s", round)
		require.NotEmpty(t, pending)

		st, err := store.Open(db)
		require.NoError(t, err, "round %d: the database opens cleanly after kill -9", round)
		s, err := New(Config{Store: st, MaxPending: 1 << 20})
		require.NoError(t, err)
		ctx := context.Background()
		for _, a := range approved {
			ok, err := s.IsAllowed(ctx, a[0], a[1])
			require.NoError(t, err)
			require.True(t, ok, "round %d: approved sender %v lost after kill -9", round, a)
		}
		// A code handed out before the crash still works after it.
		last := pending[len(pending)-1]
		res, err := s.Approve(ctx, "cli", last[0], last[2])
		require.NoError(t, err)
		require.Equal(t, last[1], res.SenderID)
		total += len(approved)
		require.NoError(t, st.Close())
	}
	t.Logf("%d SIGKILL trials: %d approvals reported before the kills, all survived", trials, total)
}
