package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	"github.com/moltbot/moltbot-secure/cli/internal/offline"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/statedir"
)

// chunkSize keeps each stream message well under the gateway's 4 MiB limit.
const chunkSize = 256 << 10

// upstreamFile is one file of an upstream state dir to send.
type upstreamFile struct {
	rel  string
	data []byte
}

// collect reads the files --from imports, never following a symlink. It
// returns what it skipped, to say so.
func collect(dir string) ([]upstreamFile, []string, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("--from %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, nil, &cmdutil.UsageError{Err: fmt.Errorf("--from %s is not a directory: give an upstream state dir such as ~/.moltbot or ~/.clawdbot", dir)}
	}
	var rels, skipped []string
	cfg := config.FileName
	if _, err := os.Lstat(filepath.Join(dir, cfg)); errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Lstat(filepath.Join(dir, "clawdbot.json")); err == nil {
			cfg = "clawdbot.json"
		}
	} else if _, err := os.Lstat(filepath.Join(dir, "clawdbot.json")); err == nil {
		skipped = append(skipped, "clawdbot.json (moltbot.json is the one in use)")
	}
	rels = append(rels, cfg, cfg+".backup")
	for _, pat := range []string{"agents/*/agent/auth-profiles.json", "credentials/*.json"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return nil, nil, err
		}
		for _, p := range m {
			rels = append(rels, statedir.Rel(dir, p))
		}
	}
	sort.Strings(rels[2:])
	var out []upstreamFile
	for _, rel := range rels {
		p := filepath.Join(dir, rel)
		st, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if !st.Mode().IsRegular() {
			skipped = append(skipped, rel+" (not a regular file: symlinks are not followed)")
			continue
		}
		if st.Size() > config.MaxFileBytes {
			return nil, nil, fmt.Errorf("%s: %d bytes is over the %d-byte limit of a state file: %w", p, st.Size(), config.MaxFileBytes, errs.ErrInvalidArgument)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, upstreamFile{filepath.ToSlash(rel), data})
	}
	if len(out) == 0 || (out[0].rel != config.FileName && out[0].rel != "clawdbot.json") {
		return nil, nil, &cmdutil.UsageError{Err: fmt.Errorf("--from %s has no moltbot.json or clawdbot.json: give an upstream state dir such as ~/.moltbot or ~/.clawdbot", dir)}
	}
	return out, skipped, nil
}

// runFrom streams an upstream state dir into the running stack.
func runFrom(ctx context.Context, f *cmdutil.Factory, o *Options) error {
	dir, err := filepath.Abs(o.From)
	if err != nil {
		return err
	}
	files, skipped, err := collect(dir)
	if err != nil {
		return err
	}
	if !f.JSON {
		fmt.Fprintf(f.Err, "migrating %s into the running stack at %s\n", dir, f.Addr())
		for _, s := range skipped {
			fmt.Fprintln(f.Err, "  skipped:", s)
		}
	}
	cc, err := f.Gateway()
	if err != nil {
		return err
	}
	resp, err := send(ctx, gatewayv1.NewGatewayClient(cc), dir, o.DryRun, files)
	if err != nil {
		if offline.GatewayDown(err) {
			return fmt.Errorf("the stack is not running at %s: --from imports into the running stack; start it (`make up`), then rerun: %w", f.Addr(), errs.FromStatus(err))
		}
		return errs.FromStatus(err)
	}
	if f.JSON {
		return f.PrintJSON(resp)
	}
	fmt.Fprintf(f.Out, "imported from %s: %d file(s)\n", dir, len(resp.GetImported()))
	return output(f, &gatewayv1.MigrateResponse{Actions: resp.GetActions(), Unfixed: resp.GetUnfixed(), BackupPath: resp.GetBackupPath(), Changed: resp.GetChanged()}, o.DryRun)
}

func send(ctx context.Context, c gatewayv1.GatewayClient, source string, dry bool, files []upstreamFile) (*gatewayv1.MigrateFromResponse, error) {
	stream, err := c.MigrateFrom(ctx)
	if err != nil {
		return nil, err
	}
	first := true
	put := func(rel string, chunk []byte) error {
		req := &gatewayv1.MigrateFromRequest{Path: rel, Chunk: chunk}
		if first {
			req.Source, req.DryRun, first = source, dry, false
		}
		return stream.Send(req)
	}
	for _, f := range files {
		data := f.data
		for {
			n := min(len(data), chunkSize)
			if err := put(f.rel, data[:n]); err != nil {
				if errors.Is(err, io.EOF) { // the server ended the call: its error comes from CloseAndRecv
					return stream.CloseAndRecv()
				}
				return nil, err
			}
			data = data[n:]
			if len(data) == 0 {
				break
			}
		}
	}
	return stream.CloseAndRecv()
}
