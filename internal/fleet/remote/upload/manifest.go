package upload

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/fleet/remote"
)

const (
	// partSuffix marks a file still being uploaded; a later Run resumes it.
	partSuffix = ".bm-part"
	// manifestName is the file in the remote directory recording, per
	// uploaded file, its SHA-256 and the identities (size, times, inode) of
	// the device's copy and of the local source it came from.
	manifestName = ".balena-migrate.sums"
)

// remoteFile is what stat says about a file on the device.
type remoteFile struct {
	size int64
	id   string // mtime/ctime/inode (ns times): changes with any write to the file
}

// record is one manifest line: the device file with identity remoteID
// holds content with SHA-256 sum, copied from the source file with
// identity srcID.
type record struct {
	sum      string
	size     int64
	remoteID string
	srcID    string
}

// remoteState is the device's side of an upload: the manifest and the
// stat of every file we might write (path and path.bm-part).
type remoteState struct {
	manifest map[string]record
	files    map[string]remoteFile
}

// queryRemote creates dir and its subdirectories, reads the manifest and
// stats the files (and their .bm-part) in one exec.
func queryRemote(ctx context.Context, s Session, dir string, dirs, files []Entry) (*remoteState, error) {
	var cmd strings.Builder
	fmt.Fprintf(&cmd, "mkdir -p %s && cd %s || exit 1", remote.Quote(dir), remote.Quote(dir))
	if len(dirs) > 0 {
		cmd.WriteString("; mkdir -p --")
		for _, d := range dirs {
			cmd.WriteString(" " + remote.Quote(d.Path))
		}
		cmd.WriteString(" || exit 1")
	}
	fmt.Fprintf(&cmd, "; cat %s 2>/dev/null; echo @@; stat -c '%%s %%.9Y/%%.9Z/%%i %%n' --", manifestName)
	for _, f := range files {
		cmd.WriteString(" " + remote.Quote(f.Path) + " " + remote.Quote(f.Path+partSuffix))
	}
	cmd.WriteString(" 2>/dev/null; exit 0")
	out, err := s.Output(ctx, cmd.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("inspect %s on device: %w", dir, err)
	}
	st := &remoteState{manifest: map[string]record{}, files: map[string]remoteFile{}}
	man, stats, _ := bytes.Cut(out, []byte("@@\n"))
	st.manifest = parseManifest(man)
	sc := bufio.NewScanner(bytes.NewReader(stats))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 3)
		if len(f) != 3 {
			continue
		}
		size, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		st.files[f[2]] = remoteFile{size: size, id: f[1]}
	}
	return st, nil
}

// parseManifest reads lines "sum size remoteID srcID path"; bad lines are
// ignored (the files are then hashed again).
func parseManifest(b []byte) map[string]record {
	m := map[string]record{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 5)
		if len(f) != 5 || len(f[0]) != 64 {
			continue
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		m[f[4]] = record{sum: f[0], size: size, remoteID: f[2], srcID: f[3]}
	}
	return m
}

func formatManifest(m map[string]record) []byte {
	paths := make([]string, 0, len(m))
	for p := range m {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var b bytes.Buffer
	for _, p := range paths {
		r := m[p]
		fmt.Fprintf(&b, "%s %d %s %s %s\n", r.sum, r.size, r.remoteID, r.srcID, p)
	}
	return b.Bytes()
}

// deviceSums runs one sha256sum over the named files (relative to dir).
func deviceSums(ctx context.Context, s Session, dir string, files []string) (map[string]string, error) {
	sums := map[string]string{}
	if len(files) == 0 {
		return sums, nil
	}
	cmd := "cd " + remote.Quote(dir) + " && sha256sum -- " + remote.QuoteArgs(files)
	out, err := s.Output(ctx, cmd, nil)
	if err != nil {
		return nil, fmt.Errorf("hash files on device: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if ok && len(sum) == 64 {
			sums[name] = sum
		}
	}
	return sums, nil
}

// finish renames uploaded .bm-part files into place with their modes, sets
// the directories' modes, then stats every file of the upload, in one exec,
// and returns the stats.
func finish(ctx context.Context, s Session, dir string, done map[string]uint32, dirs []Entry, all []string) (map[string]remoteFile, error) {
	var cmd strings.Builder
	fmt.Fprintf(&cmd, "cd %s && {", remote.Quote(dir))
	for _, d := range dirs {
		fmt.Fprintf(&cmd, " chmod %o %s &&", uint32(d.Mode.Perm()), remote.Quote(d.Path))
	}
	names := make([]string, 0, len(done))
	for p := range done {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		q := remote.Quote(p)
		fmt.Fprintf(&cmd, " chmod %o %s && mv -f %s %s &&", done[p]&0o7777, remote.Quote(p+partSuffix), remote.Quote(p+partSuffix), q)
	}
	cmd.WriteString(" stat -c '%s %.9Y/%.9Z/%i %n' -- " + remote.QuoteArgs(all) + "; }")
	out, err := s.Output(ctx, cmd.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("move uploaded files into place: %w", err)
	}
	st := map[string]remoteFile{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 3)
		if size, err := strconv.ParseInt(f[0], 10, 64); err == nil && len(f) == 3 {
			st[f[2]] = remoteFile{size: size, id: f[1]}
		}
	}
	return st, nil
}
