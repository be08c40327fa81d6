package upload

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"path"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/remote"
	"github.com/fleetmig/balena-migrate/internal/iox"
	"github.com/rs/zerolog"
)

// Session is what an upload needs of an SSH connection to the device;
// *remote.Client has it.
type Session interface {
	// Output runs a shell command with stdin (nil: none) and returns its
	// standard output; a non-zero exit is an error.
	Output(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error)
	// WriteFile replaces a file atomically.
	WriteFile(ctx context.Context, path string, data []byte, mode fs.FileMode) error
	// Subsystem opens a subsystem's byte stream; remote.ErrNoSubsystem
	// when the device has none of that name.
	Subsystem(name string) (io.ReadWriteCloser, error)
	// Classify gives an error of work over the connection its class.
	Classify(ctx context.Context, err, fallback error) error
}

// Options tune Run; the zero value is ready to use.
type Options struct {
	// Progress, when set, is called every Interval while bytes are sent,
	// and once at the end.
	Progress func(Progress)
	Interval time.Duration // 0: 2 s
	// Log receives the same progress as lines; the zero value logs nothing.
	Log zerolog.Logger
	// NoSFTP uses the tar stream even when the device offers SFTP.
	NoSFTP bool
}

// Progress is a snapshot of a running upload.
type Progress struct {
	File    string  // file being sent
	Done    int64   // bytes sent so far
	Total   int64   // bytes to send (files skipped or already there not counted)
	Rate    float64 // bytes per second since the upload started
	Elapsed time.Duration
}

// Stats summarise a finished upload.
type Stats struct {
	Method   string // "sftp", "tar", or "" when nothing had to be sent
	Files    int    // regular files in the source
	Skipped  int    // already on the device with the same size and SHA-256
	Sent     int    // sent whole
	Resumed  int    // completed from an interrupted earlier upload
	Bytes    int64  // bytes sent
	Duration time.Duration
}

// action is what Upload does with one file.
type action struct {
	entry  Entry
	offset int64  // bytes already on the device in path.bm-part
	sum    string // known SHA-256 of the whole file ("" until sent)
}

// Run copies src into dir on the device (relative to the login
// directory), creating it. Modes are kept. A file whose size and SHA-256
// already match on the device is not sent; a file an earlier upload left
// half-sent (dir/name.bm-part) is completed from where it stopped if the
// part matches the start of the file. Files arrive under their final name
// only once complete. Data goes over SFTP when the device offers it, else as
// a tar stream into `tar xpf -`; nothing is compressed. ctx bounds the whole
// upload. Memory use does not depend on file sizes.
//
// Run keeps a manifest (dir/.balena-migrate.sums) of the SHA-256 of the
// files it wrote, with the device file's size, times and inode and the
// source file's size and time: while neither copy changed, the recorded sum
// is trusted instead of hashing the file again, so re-sending an environment
// already on a device costs one round trip.
//
// Every error it returns has one of remote's classes: timeout when ctx
// ended or the device stopped answering, a network class when the
// connection failed, else transfer.
func Run(ctx context.Context, s Session, src *Source, dir string, opt Options) (Stats, error) {
	start := time.Now()
	st, err := run(ctx, s, src, dir, opt)
	st.Duration = time.Since(start)
	if err != nil {
		return st, s.Classify(ctx, fmt.Errorf("upload %s to %s: %w", src, dir, err), remote.ErrTransfer)
	}
	return st, nil
}

// upload is one Run in progress.
type upload struct {
	s     Session
	src   *Source
	dir   string
	opt   Options
	dirs  []Entry
	files []Entry
	rs    *remoteState
	// todo are the files to send; manifest the records of files skipped.
	todo     []action
	manifest map[string]record
	stats    Stats
}

func run(ctx context.Context, s Session, src *Source, dir string, opt Options) (Stats, error) {
	u := &upload{s: s, src: src, dir: dir, opt: opt}
	entries, err := src.Entries(ctx)
	if err != nil {
		return u.stats, err
	}
	for _, e := range entries {
		if e.Mode.IsDir() {
			u.dirs = append(u.dirs, e)
		} else {
			u.files = append(u.files, e)
		}
	}
	u.stats.Files = len(u.files)
	if u.rs, err = queryRemote(ctx, s, dir, u.dirs, u.files); err != nil {
		return u.stats, err
	}
	if err := u.plan(ctx); err != nil {
		return u.stats, err
	}
	u.stats.Skipped = len(u.files) - len(u.todo)
	if len(u.todo) > 0 {
		if err := u.send(ctx); err != nil {
			return u.stats, err
		}
	}
	return u.stats, u.save(ctx)
}

// plan decides, per file, whether to skip, resume or send it. It hashes only
// what the manifest cannot vouch for: on the device with one sha256sum exec,
// locally in one read of the source.
func (u *upload) plan(ctx context.Context) error {
	files, rs := u.files, u.rs
	u.manifest = map[string]record{}
	localWant, prefixes := map[string]bool{}, map[string]int64{}
	var remoteWant []string
	needRemote := map[string]bool{}
	for _, e := range files {
		rf, there := rs.files[e.Path]
		rec, known := rs.manifest[e.Path]
		part, hasPart := rs.files[e.Path+partSuffix]
		switch {
		case there && rf.size == e.Size:
			if !known || rec.remoteID != rf.id || rec.size != rf.size {
				remoteWant = append(remoteWant, e.Path)
				needRemote[e.Path] = true
			}
			if !known || rec.srcID != e.id {
				localWant[e.Path] = true
			}
		case hasPart && part.size > 0 && part.size < e.Size:
			remoteWant = append(remoteWant, e.Path+partSuffix)
			localWant[e.Path], prefixes[e.Path] = true, part.size
		}
	}
	remoteSums, err := deviceSums(ctx, u.s, u.dir, remoteWant)
	if err != nil {
		return err
	}
	local, err := u.src.hashes(ctx, localWant, prefixes)
	if err != nil {
		return err
	}
	for _, e := range files {
		rf, there := rs.files[e.Path]
		rec := rs.manifest[e.Path]
		remoteSum := rec.sum
		if needRemote[e.Path] {
			remoteSum = remoteSums[e.Path]
		}
		localSum := local[e.Path].full
		if !localWant[e.Path] {
			localSum = rec.sum
		}
		switch {
		case there && rf.size == e.Size && remoteSum == localSum && localSum != "":
			u.manifest[e.Path] = record{sum: localSum, size: e.Size, remoteID: rf.id, srcID: e.id}
		case prefixes[e.Path] > 0 && remoteSums[e.Path+partSuffix] == local[e.Path].prefix:
			u.todo = append(u.todo, action{entry: e, offset: prefixes[e.Path], sum: localSum})
		default:
			u.todo = append(u.todo, action{entry: e})
		}
	}
	return nil
}

// send transfers the planned files into name.bm-part files, then moves them
// into place.
func (u *upload) send(ctx context.Context) error {
	m := newMeter(u.opt, u.todo)
	defer m.stop()
	var sender fileSender
	if !u.opt.NoSFTP {
		ss, err := newSFTPSender(u.s, u.dir)
		if err != nil {
			return err
		}
		if ss != nil {
			sender = ss
			u.stats.Method = "sftp"
		}
	}
	if sender == nil {
		sender = &tarSender{s: u.s, dir: u.dir}
		u.stats.Method = "tar"
	}
	byPath := map[string]*action{}
	want := map[string]bool{}
	for i := range u.todo {
		byPath[u.todo[i].entry.Path] = &u.todo[i]
		want[u.todo[i].entry.Path] = true
	}
	if err := sender.start(ctx); err != nil {
		return err
	}
	err := u.src.eachFile(ctx, want, func(e Entry, r io.Reader) error {
		return u.sendOne(ctx, sender, byPath[e.Path], r, m)
	})
	if err2 := sender.close(err); err == nil {
		err = err2
	}
	return err
}

// sendOne sends one file (the part after a.offset) and fills in its sum.
func (u *upload) sendOne(ctx context.Context, s fileSender, a *action, r io.Reader, m *meter) error {
	stats := &u.stats
	m.file(a.entry.Path)
	var h hash.Hash
	if a.offset > 0 {
		if _, err := io.CopyN(io.Discard, r, a.offset); err != nil {
			return fmt.Errorf("%s: skip to %d: %w", a.entry.Path, a.offset, err)
		}
		stats.Resumed++
	} else {
		h = sha256.New()
		r = io.TeeReader(r, h)
		stats.Sent++
	}
	n := a.entry.Size - a.offset
	cr := &countingReader{r: iox.ContextReader(ctx, io.LimitReader(r, n)), m: m}
	if err := s.write(ctx, a.entry, a.offset, cr); err != nil {
		return fmt.Errorf("%s: %w", a.entry.Path, err)
	}
	if cr.n != n {
		return fmt.Errorf("%s: source ended after %d of %d bytes", a.entry.Path, a.offset+cr.n, a.entry.Size)
	}
	stats.Bytes += n
	if h != nil {
		a.sum = hex.EncodeToString(h.Sum(nil))
		u.src.remember(a.entry, a.sum)
	}
	return nil
}

// save moves sent files into place and records the manifest. With
// nothing sent and nothing new to record it writes nothing.
func (u *upload) save(ctx context.Context) error {
	files, todo, manifest := u.files, u.todo, u.manifest
	if len(todo) == 0 && sameRecords(manifest, u.rs.manifest) {
		return nil
	}
	done := map[string]uint32{}
	for _, a := range todo {
		done[a.entry.Path] = uint32(a.entry.Mode.Perm())
	}
	all := make([]string, len(files))
	for i, e := range files {
		all[i] = e.Path
	}
	stat, err := finish(ctx, u.s, u.dir, done, u.dirs, all)
	if err != nil {
		return err
	}
	for _, a := range todo {
		rf, ok := stat[a.entry.Path]
		if !ok || rf.size != a.entry.Size {
			return fmt.Errorf("%s: %d bytes on the device after upload, want %d", a.entry.Path, rf.size, a.entry.Size)
		}
		manifest[a.entry.Path] = record{sum: a.sum, size: a.entry.Size, remoteID: rf.id, srcID: a.entry.id}
	}
	for p, r := range manifest {
		if rf, ok := stat[p]; ok {
			r.remoteID = rf.id // the rename or chmod may have moved ctime
			manifest[p] = r
		}
	}
	return u.s.WriteFile(ctx, path.Join(u.dir, manifestName), formatManifest(manifest), 0o644)
}

func sameRecords(a, b map[string]record) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// fileSender writes files into dir/name.bm-part on the device.
type fileSender interface {
	start(ctx context.Context) error
	// write appends r to name.bm-part, which holds offset bytes already
	// (offset 0: create or truncate it).
	write(ctx context.Context, e Entry, offset int64, r io.Reader) error
	// close ends the transfer; failed is the error that stopped it, if any.
	close(failed error) error
}

// countingReader counts bytes for progress.
type countingReader struct {
	r io.Reader
	n int64
	m *meter
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.m.add(int64(n))
	return n, err
}
