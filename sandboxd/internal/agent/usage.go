package agent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// MaxUsageDepth bounds how deep DiskUsage descends: each level holds one
// directory descriptor open, and a tree deeper than this is refused (the
// workspace then counts as over its quota) rather than exhausting fds.
const MaxUsageDepth = 512

// DiskUsage returns the disk space allocated under root, as du -skx counts
// it: every entry's blocks, hard-linked files once, never following a
// symlink (directories are opened with O_NOFOLLOW relative to their
// parent, so a swap between the stat and the open is refused too) and
// never leaving root's filesystem. An unreadable directory, a tree deeper
// than MaxUsageDepth or passing the deadline is an error, never a smaller
// figure. Entries removed while the walk runs are skipped.
func DiskUsage(root string, deadline time.Time) (int64, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", root, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		_ = unix.Close(fd)
		return 0, fmt.Errorf("stat %s: %w", root, err)
	}
	w := &walker{dev: st.Dev, deadline: deadline, links: map[uint64]bool{}, total: st.Blocks * 512}
	err = w.dir(fd, ".", 1)
	if err != nil {
		return 0, err
	}
	return w.total, nil
}

type walker struct {
	dev      uint64
	deadline time.Time
	links    map[uint64]bool // inodes with nlink > 1 already counted
	total    int64
	n        int
}

// dir counts the entries of the open directory fd (named rel, for errors)
// and descends into its subdirectories. It closes fd.
func (w *walker) dir(fd int, rel string, depth int) error {
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	for {
		// In batches: a directory of millions of entries must not cost
		// PID 1 (under the sandbox's memory limit) all their names at once.
		ents, err := f.ReadDir(256)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read directory %q: %w", rel, err)
		}
		if err := w.entries(fd, rel, depth, ents); err != nil {
			return err
		}
	}
}

func (w *walker) entries(fd int, rel string, depth int, ents []os.DirEntry) error {
	for _, e := range ents {
		if w.n++; w.n%1024 == 0 && time.Now().After(w.deadline) {
			return errors.New("measurement took too long (more files than can be counted in time)")
		}
		name := e.Name()
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return fmt.Errorf("stat %q: %w", join(rel, name), err)
		}
		if st.Dev != w.dev {
			continue
		}
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		if !isDir && st.Nlink > 1 {
			if w.links[st.Ino] {
				continue
			}
			w.links[st.Ino] = true
		}
		w.total += st.Blocks * 512
		if !isDir {
			continue
		}
		if depth >= MaxUsageDepth {
			return fmt.Errorf("directory %q is nested deeper than %d levels", join(rel, name), MaxUsageDepth)
		}
		cfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		switch {
		case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
			// Removed or replaced (by a symlink or a file) since the stat.
			continue
		case err != nil:
			return fmt.Errorf("open directory %q: %w", join(rel, name), err)
		}
		if err := w.dir(cfd, join(rel, name), depth+1); err != nil {
			return err
		}
	}
	return nil
}

func join(dir, name string) string {
	if dir == "." {
		return name
	}
	return dir + "/" + name
}
