//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/testharness"
)

// The fault tests run the daemons from bin/ (make binaries) as local
// processes (testharness.LocalStack): the test can SIGKILL the gateway at
// any instant, and give its state dir a small tmpfs.

const botTokenPath = "channels.telegram.botToken"

// soak reports whether the long versions run (make soak).
func soak() bool { return os.Getenv("MOLTBOT_SOAK") == "1" }

func setSecret(ctx context.Context, gw gatewayv1.GatewayClient, v string) error {
	_, err := gw.SetConfig(ctx, &gatewayv1.SetConfigRequest{Path: botTokenPath, Value: v, ValueIsString: true})
	return err
}

func revealSecret(ctx context.Context, gw gatewayv1.GatewayClient) (string, error) {
	r, err := gw.RevealConfig(ctx, &gatewayv1.RevealConfigRequest{Path: botTokenPath}, grpc.WaitForReady(true))
	if err != nil {
		return "", err
	}
	return strings.Trim(r.GetValueJson(), `"`), nil
}

// faultBotToken is shaped like a Telegram bot token, so validation passes.
func faultBotToken(i int) string { return fmt.Sprintf("%d:AAfault%026d", 4242+i%1000, i) }

// TestFaultSecretsdDown: with secretsd stopped the gateway refuses secret
// reads and secret writes with Unavailable naming secretsd, leaves the file
// alone, and serves again once secretsd is back.
func TestFaultSecretsdDown(t *testing.T) {
	ls := testharness.StartLocal(t, testharness.LocalOptions{Services: []string{testharness.Secretsd, testharness.Gateway}})
	gw := ls.AdminGateway(t)
	ctx := ctxFor(t, time.Minute)
	const v = "4242:AAsecretsdDOWNtestTOKEN0123456789"
	require.NoError(t, setSecret(ctx, gw, v))
	before, err := os.ReadFile(ls.ConfigPath())
	require.NoError(t, err)

	require.NoError(t, ls.Stop(testharness.Secretsd, 5*time.Second))
	for name, call := range map[string]func(context.Context) error{
		"get --reveal": func(ctx context.Context) error {
			_, err := gw.RevealConfig(ctx, &gatewayv1.RevealConfigRequest{Path: botTokenPath})
			return err
		},
		"set secret": func(ctx context.Context) error { return setSecret(ctx, gw, "4242:AAnewVALUEwhileSECRETSDisDOWN0123") },
	} {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		start := time.Now()
		err := call(cctx)
		cancel()
		require.Errorf(t, err, "%s with secretsd down", name)
		st := status.Convert(err)
		require.Containsf(t, []codes.Code{codes.Unavailable, codes.FailedPrecondition}, st.Code(), "%s: %v", name, err)
		// Checked without stopping the test, so the recovery below is
		// still exercised when only the wording is wrong.
		assert.Containsf(t, st.Message(), "secretsd", "%s: the message names the missing service: %v", name, err)
		require.NotContains(t, st.Message(), v)
		t.Logf("%s with secretsd down: %s after %s", name, st.Code(), time.Since(start).Round(time.Millisecond))
	}
	after, err := os.ReadFile(ls.ConfigPath())
	require.NoError(t, err)
	require.Equal(t, string(before), string(after), "a refused set leaves the file as it was")
	// The unauthenticated part of the gateway keeps answering.
	_, err = gw.Status(ctx, &gatewayv1.StatusRequest{})
	require.NoError(t, err, "gateway status with secretsd down")

	require.NoError(t, ls.StartAgain(ctx, testharness.Secretsd))
	start := time.Now()
	require.Eventually(t, func() bool {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		got, err := revealSecret(cctx, gw)
		return err == nil && got == v
	}, 20*time.Second, 100*time.Millisecond, "secret reads recover once secretsd is back")
	t.Logf("recovered %s after secretsd was healthy again", time.Since(start).Round(time.Millisecond))
	require.NoError(t, setSecret(ctx, gw, "4242:AAafterRECOVERYtoken01234567890123"))
}

// TestFaultKillDuringConfigSet SIGKILLs the gateway at a random instant
// while a client loops SetConfig on a secret (validate -> encrypt through
// secretsd -> sealed backup -> atomic write). After every kill the file
// must parse and hold an envelope, the restarted gateway must load it and
// reveal a value that was sent and is no older than the last acknowledged
// one, and nothing but renameio's dot-prefixed temp files may be left.
// 20 trials; 1000 with MOLTBOT_SOAK=1.
func TestFaultKillDuringConfigSet(t *testing.T) {
	trials := 20
	if soak() {
		trials = 1000
	}
	ls := testharness.StartLocal(t, testharness.LocalOptions{Services: []string{testharness.Secretsd, testharness.Gateway}})
	gw := ls.AdminGateway(t)
	ctx := ctxFor(t, time.Duration(trials)*3*time.Second+time.Minute)
	seq := 0
	require.NoError(t, setSecret(ctx, gw, faultBotToken(seq)))
	acked := seq // index of the last acknowledged value
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	dir := ls.StateDir(testharness.Gateway)
	var inFlight, killedMidSet int
	leftovers := map[string]bool{}
	start := time.Now()
	for trial := 0; trial < trials; trial++ {
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			stop    = make(chan struct{})
			lastAck = acked
			sent    = seq
		)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				sent++
				i := sent
				mu.Unlock()
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := setSecret(cctx, gw, faultBotToken(i))
				cancel()
				if err != nil {
					return // the kill
				}
				mu.Lock()
				lastAck = i
				mu.Unlock()
			}
		}()
		time.Sleep(time.Duration(rng.IntN(60_000)) * time.Microsecond)
		require.NoError(t, ls.Kill(testharness.Gateway))
		close(stop)
		wg.Wait()
		mu.Lock()
		acked, seq = lastAck, sent
		mu.Unlock()
		if seq > acked {
			inFlight++
		}

		raw, err := os.ReadFile(ls.ConfigPath())
		require.NoErrorf(t, err, "trial %d", trial)
		c, err := config.Parse(ls.ConfigPath(), raw)
		require.NoErrorf(t, err, "trial %d: torn config:\n%s", trial, raw)
		var found bool
		for _, r := range config.SecretPaths(c.Raw) {
			if r.Path == botTokenPath {
				found = true
				require.Equalf(t, config.StateEnvelope, r.State, "trial %d: %s is not an envelope", trial, botTokenPath)
			}
		}
		require.Truef(t, found, "trial %d: %s missing from\n%s", trial, botTokenPath, raw)
		ents, err := os.ReadDir(dir)
		require.NoError(t, err)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".moltbot.json") {
				leftovers[e.Name()] = true
				continue
			}
			// Sealed backups are moltbot.json.backup (+ .<time>); nothing else
			// may look like the config.
			require.Falsef(t, strings.HasPrefix(e.Name(), "moltbot.json") && e.Name() != "moltbot.json" && !strings.HasPrefix(e.Name(), "moltbot.json.backup"),
				"trial %d: unexpected file %s next to the config", trial, e.Name())
		}

		require.NoErrorf(t, ls.StartAgain(ctx, testharness.Gateway), "trial %d: the gateway must start on the file it left", trial)
		got, err := revealSecret(ctx, gw)
		require.NoErrorf(t, err, "trial %d: reveal after restart", trial)
		var idx int
		_, err = fmt.Sscanf(got[strings.Index(got, "AAfault")+len("AAfault"):], "%d", &idx)
		require.NoErrorf(t, err, "trial %d: revealed %q is none of the values sent", trial, got)
		require.Equalf(t, faultBotToken(idx), got, "trial %d", trial)
		require.GreaterOrEqualf(t, idx, acked, "trial %d: an acknowledged write (%d) was lost, file has %d", trial, acked, idx)
		require.LessOrEqualf(t, idx, seq, "trial %d", trial)
		if idx > acked {
			killedMidSet++ // written, killed before the answer
		}
		acked, seq = idx, max(seq, idx)
	}
	t.Logf("%d kill trials in %s: 0 torn files, 0 lost acknowledged writes; %d kills with a set in flight, %d of them after the rename; %d renameio temp files left behind (dot-prefixed, never read)",
		trials, time.Since(start).Round(time.Millisecond), inFlight, killedMidSet, len(leftovers))
}

// TestFaultDiskFullOnConfigWrite puts the gateway's state dir on a small
// tmpfs, fills it, and checks that SetConfig fails with an error naming the
// cause, the old config stays intact and readable, and writes work again
// once there is room.
func TestFaultDiskFullOnConfigWrite(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): %v: %s", err, out)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	ls := testharness.StartLocal(t, testharness.LocalOptions{
		Services:  []string{testharness.Secretsd, testharness.Gateway},
		StateDirs: map[string]string{testharness.Gateway: dir},
	})
	gw := ls.AdminGateway(t)
	ctx := ctxFor(t, time.Minute)
	const old = "4242:AAdiskFULLoldTOKEN0123456789abcd"
	require.NoError(t, setSecret(ctx, gw, old))
	before, err := os.ReadFile(ls.ConfigPath())
	require.NoError(t, err)

	filler := filepath.Join(dir, "filler")
	fill(t, filler)
	err = setSecret(ctx, gw, "4242:AAdiskFULLnewTOKEN0123456789abcd")
	require.Error(t, err, "set on a full disk")
	msg := status.Convert(err).Message()
	t.Logf("set on a full disk: %s: %s", status.Code(err), msg)
	assert.Contains(t, msg, "no space left on device", "the client is told the cause, not just \"internal error\"")
	require.Contains(t, ls.Logs(testharness.Gateway), "no space left on device", "the gateway log names the cause")
	require.NotContains(t, msg, old)
	after, err := os.ReadFile(ls.ConfigPath())
	require.NoError(t, err)
	require.Equal(t, string(before), string(after), "old config intact")
	// A reveal is a decision the security log must record first: on a full
	// disk it is refused, naming the log, and works again once there is room.
	_, err = revealSecret(ctx, gw)
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	require.Contains(t, status.Convert(err).Message(), "security log")
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range ents {
		require.Falsef(t, strings.HasPrefix(e.Name(), ".moltbot.json"), "temp file %s left after a failed write", e.Name())
	}

	// Free 1, 2, 3... pages (a failed set may keep what it wrote, so each
	// step frees one more than the last): the set fails first at the sealed
	// backups, then at the config's own temp file, and finally has room.
	// Every failure must leave the old file.
	require.NoError(t, os.Remove(filler))
	fill(t, filler)
	stages := map[string]bool{}
	for pages := 1; pages <= 8; pages++ {
		require.NoError(t, os.Truncate(filler, max(0, fileSize(t, filler)-int64(pages)*4096)))
		logBefore := len(ls.Logs(testharness.Gateway))
		if err := setSecret(ctx, gw, faultBotToken(pages)); err == nil {
			t.Logf("set succeeded with %d more page(s) free", pages)
			break
		}
		after, err := os.ReadFile(ls.ConfigPath())
		require.NoError(t, err)
		require.Equalf(t, string(before), string(after), "old config intact (%d pages free)", pages)
		stage := "unknown"
		if l := ls.Logs(testharness.Gateway)[logBefore:]; strings.Contains(l, "write sealed backup") {
			stage = "sealed backup"
		} else if strings.Contains(l, "no space left on device") {
			stage = "config write"
		}
		stages[stage] = true
		t.Logf("set with %d more page(s) free failed at the %s", pages, stage)
	}
	require.True(t, stages["config write"], "a step hit ENOSPC in the config write itself: %v", stages)

	require.NoError(t, os.Remove(filler))
	const fresh = "4242:AAdiskROOMagainTOKEN0123456789a"
	require.NoError(t, setSecret(ctx, gw, fresh), "set once there is room again")
	got, err := revealSecret(ctx, gw)
	require.NoError(t, err)
	require.Equal(t, fresh, got)
}

// fill writes p until the file system is full.
func fill(t *testing.T, p string) {
	t.Helper()
	f, err := os.Create(p)
	require.NoError(t, err)
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			require.Truef(t, errors.Is(err, syscall.ENOSPC), "fill: %v", err)
			return
		}
	}
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	require.NoError(t, err)
	return fi.Size()
}
