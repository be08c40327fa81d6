package upload

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/fleetmig/balena-migrate/internal/iox"
)

// Source is a migration environment to upload: a local directory, or a
// local .tgz / .tar.gz / .tar archive that is streamed, never unpacked to
// disk. A Source remembers the SHA-256 of files it hashed (until they
// change), so a worker that keeps one per environment hashes each file once
// however many devices it serves. It is safe for concurrent use.
type Source struct {
	path    string
	archive bool

	mu       sync.Mutex
	sums     map[string]cachedSum // by entry path
	listID   string               // identity of the archive when list was read
	list     []Entry
	listErrs error
}

type cachedSum struct {
	id  string
	sum string
}

// Entry is one file or directory of a Source.
type Entry struct {
	Path string      // slash-separated, relative to the source root
	Mode fs.FileMode // type bits and permissions
	Size int64       // regular files only
	// id changes whenever the local content may have changed (size and
	// modification time; for an archive also the archive's own).
	id string
}

// NewSource opens a directory or a .tgz/.tar.gz/.tar file.
func NewSource(p string) (*Source, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("migration environment: %w", err)
	}
	s := &Source{path: p, sums: map[string]cachedSum{}}
	switch {
	case st.IsDir():
	case st.Mode().IsRegular() && (strings.HasSuffix(p, ".tgz") || strings.HasSuffix(p, ".tar.gz") || strings.HasSuffix(p, ".tar")):
		s.archive = true
	default:
		return nil, fmt.Errorf("migration environment %s: neither a directory nor a .tgz/.tar.gz/.tar file", p)
	}
	return s, nil
}

// String is the source's path.
func (s *Source) String() string { return s.path }

func statID(st fs.FileInfo) string {
	return fmt.Sprintf("%d:%d", st.Size(), st.ModTime().UnixNano())
}

// Entries lists the source's directories and regular files, parents before
// children. Symbolic links, devices and the like are refused.
func (s *Source) Entries(ctx context.Context) ([]Entry, error) {
	if s.archive {
		return s.archiveEntries(ctx)
	}
	var list []Entry
	err := filepath.WalkDir(s.path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.path, p)
		if rel == "." {
			return nil
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		e := Entry{Path: filepath.ToSlash(rel), Mode: st.Mode(), id: statID(st)}
		if st.Mode().IsRegular() {
			e.Size = st.Size()
		}
		list = append(list, e)
		return checkEntry(e)
	})
	if err != nil {
		return nil, fmt.Errorf("migration environment %s: %w", s.path, err)
	}
	return list, nil
}

// checkEntry refuses what Run cannot carry.
func checkEntry(e Entry) error {
	if !e.Mode.IsDir() && !e.Mode.IsRegular() {
		return fmt.Errorf("%s: only directories and regular files can be uploaded (mode %v)", e.Path, e.Mode)
	}
	if strings.ContainsAny(e.Path, "\n\r") || strings.HasSuffix(e.Path, partSuffix) || e.Path == manifestName {
		return fmt.Errorf("%q: file name not allowed", e.Path)
	}
	return nil
}

// archiveEntries reads the archive's headers once per archive version.
func (s *Source) archiveEntries(ctx context.Context) ([]Entry, error) {
	st, err := os.Stat(s.path)
	if err != nil {
		return nil, fmt.Errorf("migration environment: %w", err)
	}
	id := statID(st)
	s.mu.Lock()
	if s.listID == id {
		defer s.mu.Unlock()
		return s.list, s.listErrs
	}
	s.mu.Unlock()
	var list []Entry
	err = s.readArchive(ctx, func(e Entry, _ io.Reader) error {
		list = append(list, e)
		return nil
	})
	if err != nil {
		err = fmt.Errorf("migration environment %s: %w", s.path, err)
	}
	s.mu.Lock()
	s.listID, s.list, s.listErrs = id, list, err
	s.mu.Unlock()
	return list, err
}

// readArchive calls fn for every entry of the archive in order, with a
// reader of a regular file's content. Directories the archive implies but
// does not list are reported before their first child.
func (s *Source) readArchive(ctx context.Context, fn func(Entry, io.Reader) error) error {
	f, st, err := openStat(s.path)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if !strings.HasSuffix(s.path, ".tar") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return err
		}
		defer gz.Close()
		r = gz
	}
	tr := tar.NewReader(r)
	dirs := map[string]bool{}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if name == "." {
			continue
		}
		if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("%s: path leaves the environment", h.Name)
		}
		e := Entry{Path: name, Mode: h.FileInfo().Mode(), Size: h.Size,
			id: statID(st) + ":" + fmt.Sprint(h.Size, ":", h.ModTime.UnixNano())}
		if !e.Mode.IsRegular() {
			e.Size = 0
		}
		if err := checkEntry(e); err != nil {
			return err
		}
		if err := impliedDirs(name, dirs, fn); err != nil {
			return err
		}
		if e.Mode.IsDir() {
			if dirs[name] {
				continue
			}
			dirs[name] = true
		}
		if err := fn(e, tr); err != nil {
			return err
		}
	}
}

func impliedDirs(name string, seen map[string]bool, fn func(Entry, io.Reader) error) error {
	var missing []string
	for d := path.Dir(name); d != "." && !seen[d]; d = path.Dir(d) {
		missing = append(missing, d)
	}
	sort.Strings(missing) // parents first
	for _, d := range missing {
		seen[d] = true
		if err := fn(Entry{Path: d, Mode: fs.ModeDir | 0o755, id: "implied"}, nil); err != nil {
			return err
		}
	}
	return nil
}

// eachFile calls fn, in source order, for the regular files named in want,
// with a reader of their content.
func (s *Source) eachFile(ctx context.Context, want map[string]bool, fn func(Entry, io.Reader) error) error {
	if s.archive {
		return s.readArchive(ctx, func(e Entry, r io.Reader) error {
			if !e.Mode.IsRegular() || !want[e.Path] {
				return nil
			}
			return fn(e, r)
		})
	}
	list, err := s.Entries(ctx)
	if err != nil {
		return err
	}
	for _, e := range list {
		if !e.Mode.IsRegular() || !want[e.Path] {
			continue
		}
		if err := s.withFile(e, fn); err != nil {
			return err
		}
	}
	return nil
}

func (s *Source) withFile(e Entry, fn func(Entry, io.Reader) error) error {
	f, st, err := openStat(filepath.Join(s.path, filepath.FromSlash(e.Path)))
	if err != nil {
		return err
	}
	defer f.Close()
	if statID(st) != e.id {
		return fmt.Errorf("%s changed while uploading", e.Path)
	}
	return fn(e, io.LimitReader(f, e.Size))
}

func openStat(p string) (*os.File, fs.FileInfo, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}

// fileSums are the SHA-256 of a whole file and of its first prefixLen bytes.
type fileSums struct {
	full   string
	prefix string
}

// hashes computes the SHA-256 of the named files, and of their first n
// bytes where prefix[path] = n > 0, in one read of each file (one pass over
// an archive). Whole-file sums are cached while the file is unchanged.
func (s *Source) hashes(ctx context.Context, files map[string]bool, prefix map[string]int64) (map[string]fileSums, error) {
	out := map[string]fileSums{}
	if len(files) == 0 {
		return out, nil
	}
	err := s.eachFile(ctx, files, func(e Entry, r io.Reader) error {
		s.mu.Lock()
		c, ok := s.sums[e.Path]
		s.mu.Unlock()
		if ok && c.id == e.id && prefix[e.Path] == 0 {
			out[e.Path] = fileSums{full: c.sum}
			return nil
		}
		fs, err := hashReader(ctx, r, prefix[e.Path])
		if err != nil {
			return fmt.Errorf("hash %s: %w", e.Path, err)
		}
		s.remember(e, fs.full)
		out[e.Path] = fs
		return nil
	})
	return out, err
}

func (s *Source) remember(e Entry, sum string) {
	s.mu.Lock()
	s.sums[e.Path] = cachedSum{id: e.id, sum: sum}
	s.mu.Unlock()
}

func hashReader(ctx context.Context, r io.Reader, prefixLen int64) (fileSums, error) {
	h := sha256.New()
	var fs fileSums
	if prefixLen > 0 {
		if _, err := io.CopyN(h, iox.ContextReader(ctx, r), prefixLen); err != nil {
			return fs, err
		}
		fs.prefix = hex.EncodeToString(h.Sum(nil))
	}
	if _, err := io.Copy(h, iox.ContextReader(ctx, r)); err != nil {
		return fs, err
	}
	fs.full = hex.EncodeToString(h.Sum(nil))
	return fs, nil
}

// ReadFile returns the content of the regular file name (slash-separated,
// relative to the root), at most limit bytes; fs.ErrNotExist when the
// source has no such file.
func (s *Source) ReadFile(ctx context.Context, name string, limit int64) ([]byte, error) {
	var data []byte
	found := false
	err := s.eachFile(ctx, map[string]bool{name: true}, func(_ Entry, r io.Reader) error {
		found = true
		var err error
		data, err = io.ReadAll(io.LimitReader(r, limit))
		return err
	})
	if err == nil && !found {
		err = fmt.Errorf("%s in %s: %w", name, s.path, fs.ErrNotExist)
	}
	return data, err
}
