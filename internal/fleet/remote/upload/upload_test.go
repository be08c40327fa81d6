package upload

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/remote"
	"github.com/fleetmig/balena-migrate/internal/testenv/sshtest"
)

// envFiles is a small migration environment: rel path → mode; the image
// gets imageSize random bytes, the others short text.
var envFiles = map[string]fs.FileMode{
	"balena-migrate":           0o755,
	"balena-migrate.conf":      0o600,
	"image.img.gz":             0o644,
	"empty":                    0o640,
	"scripts/hooks/pre-backup": 0o750,
}

func makeEnv(t *testing.T, imageSize int) string {
	t.Helper()
	dir := t.TempDir()
	for rel, mode := range envFiles {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		data := []byte("content of " + rel + "\n")
		switch rel {
		case "image.img.gz":
			data = randomBytes(t, imageSize)
		case "empty":
			data = nil
		}
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
	}
	os.Chmod(filepath.Join(dir, "scripts", "hooks"), 0o700)
	return dir
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func fileSum(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}

// sameTree checks that every file of the environment arrived with its
// content and mode, owned by the device user, and that no .bm-part is left.
func sameTree(t *testing.T, env string, d *device, remoteDir string) {
	t.Helper()
	root := d.user.Path(remoteDir)
	for rel, mode := range envFiles {
		p := filepath.Join(root, rel)
		st, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s missing on device: %v", rel, err)
			continue
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", rel, st.Mode().Perm(), mode)
		}
		if fileSum(t, p) != fileSum(t, filepath.Join(env, rel)) {
			t.Errorf("%s: content differs", rel)
		}
		if owner := fileOwner(t, p); owner != d.user.Name {
			t.Errorf("%s owned by %s", rel, owner)
		}
	}
	filepath.WalkDir(root, func(p string, _ fs.DirEntry, _ error) error {
		if strings.HasSuffix(p, partSuffix) || strings.HasSuffix(p, ".bm-tmp") {
			t.Errorf("left over: %s", p)
		}
		return nil
	})
}

func fileOwner(t *testing.T, p string) string {
	out, err := exec.Command("stat", "-c", "%U", p).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func uploadT(t *testing.T, c *remote.Client, src string, opt Options) Stats {
	t.Helper()
	s, err := NewSource(src)
	if err != nil {
		t.Fatal(err)
	}
	st, err := Run(context.Background(), c, s, "migrate", opt)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return st
}

func TestUploadSFTPSkipsWhatIsThere(t *testing.T) {
	d := newDevice(t, sshtest.Config{}, sshtest.UserConfig{})
	env := makeEnv(t, 3<<20)
	c := d.dial(t)
	var last atomic.Value
	st := uploadT(t, c, env, Options{Progress: func(p Progress) { last.Store(p) }, Interval: 10 * time.Millisecond})
	if st.Method != "sftp" || st.Sent != len(envFiles) || st.Skipped != 0 {
		t.Errorf("first upload: %+v", st)
	}
	if p, _ := last.Load().(Progress); p.Done != p.Total || p.Total != st.Bytes || p.Total < 3<<20 {
		t.Errorf("final progress %+v, stats %+v", p, st)
	}
	sameTree(t, env, d, "migrate")
	if m, _ := os.Stat(d.user.Path("migrate/scripts/hooks")); m.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", m.Mode().Perm())
	}

	manifest, _ := os.Stat(d.user.Path("migrate/" + manifestName))
	if st := uploadT(t, c, env, Options{}); st.Skipped != len(envFiles) || st.Bytes != 0 || st.Method != "" {
		t.Errorf("unchanged rerun: %+v", st)
	}
	if again, err := os.Stat(d.user.Path("migrate/" + manifestName)); err != nil || !again.ModTime().Equal(manifest.ModTime()) {
		t.Errorf("unchanged rerun rewrote the manifest (%v)", err)
	}

	// Same size, new content locally: only that file goes.
	if err := os.WriteFile(filepath.Join(env, "balena-migrate.conf"), []byte("CONTENT OF balena-migrate.conf\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// New time, same content: hashed, found equal, skipped.
	later := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(env, "balena-migrate"), later, later)
	st = uploadT(t, c, env, Options{})
	if st.Sent != 1 || st.Skipped != len(envFiles)-1 {
		t.Errorf("after a local change: %+v", st)
	}
	sameTree(t, env, d, "migrate")

	// Changed on the device behind our back (same size): found and repaired.
	img := d.user.Path("migrate/image.img.gz")
	f, _ := os.OpenFile(img, os.O_WRONLY, 0)
	f.WriteAt([]byte("XXXX"), 1000)
	f.Close()
	st = uploadT(t, c, env, Options{})
	if st.Sent != 1 || st.Bytes != 3<<20 {
		t.Errorf("after a device-side change: %+v", st)
	}
	sameTree(t, env, d, "migrate")
}

func TestUploadTarWhenNoSFTP(t *testing.T) {
	d := newDevice(t, sshtest.Config{NoSFTP: true}, sshtest.UserConfig{})
	env := makeEnv(t, 1<<20)
	c := d.dial(t)
	st := uploadT(t, c, env, Options{})
	if st.Method != "tar" || st.Sent != len(envFiles) {
		t.Errorf("upload: %+v", st)
	}
	sameTree(t, env, d, "migrate")
	if st := uploadT(t, c, env, Options{}); st.Skipped != len(envFiles) || st.Bytes != 0 {
		t.Errorf("rerun: %+v", st)
	}
}

func TestUploadArchive(t *testing.T) {
	d := newDevice(t, sshtest.Config{}, sshtest.UserConfig{})
	env := makeEnv(t, 2<<20)
	tgz := filepath.Join(t.TempDir(), "env.tgz")
	writeTgz(t, env, tgz)
	c := d.dial(t)
	for _, noSFTP := range []bool{false, true} {
		os.RemoveAll(d.user.Path("migrate"))
		st := uploadT(t, c, tgz, Options{NoSFTP: noSFTP})
		if st.Sent != len(envFiles) {
			t.Errorf("noSFTP=%v: %+v", noSFTP, st)
		}
		sameTree(t, env, d, "migrate")
		if st := uploadT(t, c, tgz, Options{NoSFTP: noSFTP}); st.Skipped != len(envFiles) {
			t.Errorf("noSFTP=%v rerun: %+v", noSFTP, st)
		}
	}
}

// writeTgz archives env's files without directory entries (the source must
// create the directories the paths imply) and with a "./" prefix.
func writeTgz(t *testing.T, env, out string) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for rel, mode := range envFiles {
		data, err := os.ReadFile(filepath.Join(env, rel))
		if err != nil {
			t.Fatal(err)
		}
		tw.WriteHeader(&tar.Header{Name: "./" + rel, Mode: int64(mode), Size: int64(len(data)), Typeflag: tar.TypeReg, ModTime: time.Now()})
		tw.Write(data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	gz.Close()
	f.Close()
	// scripts/hooks is implied, so it gets 0755 rather than env's 0700.
	os.Chmod(filepath.Join(env, "scripts", "hooks"), 0o755)
}

func TestUploadResumesAfterConnectionKilled(t *testing.T) {
	for _, noSFTP := range []bool{false, true} {
		name := map[bool]string{false: "sftp", true: "tar"}[noSFTP]
		t.Run(name, func(t *testing.T) {
			d := newDevice(t, sshtest.Config{NoSFTP: noSFTP}, sshtest.UserConfig{})
			const size = 96 << 20
			env := makeEnv(t, size)
			src, _ := NewSource(env)
			c := d.dial(t)
			var killed atomic.Bool
			kill := func(p Progress) {
				if p.Done > 24<<20 && !killed.Swap(true) {
					d.srv.KillSessions()
				}
			}
			_, err := Run(context.Background(), c, src, "migrate", Options{Progress: kill, Interval: 5 * time.Millisecond})
			if !killed.Load() || !errors.Is(err, remote.ErrTransfer) {
				t.Fatalf("killed %v, err %v", killed.Load(), err)
			}
			part, err := os.Stat(d.user.Path("migrate/image.img.gz" + partSuffix))
			if err != nil || part.Size() == 0 || part.Size() >= size {
				t.Fatalf("after the kill: part file %v, %v", part, err)
			}
			if _, err := os.Stat(d.user.Path("migrate/image.img.gz")); err == nil {
				t.Fatal("incomplete image already under its final name")
			}
			c = d.dial(t)
			st, err := Run(context.Background(), c, src, "migrate", Options{})
			if err != nil {
				t.Fatal(err)
			}
			if st.Resumed != 1 || st.Bytes > size-part.Size()+1<<20 {
				t.Errorf("resume: %+v (part had %d bytes)", st, part.Size())
			}
			sameTree(t, env, d, "migrate")
		})
	}
}

func TestUploadRestartsAPartThatDoesNotMatch(t *testing.T) {
	d := newDevice(t, sshtest.Config{}, sshtest.UserConfig{})
	env := makeEnv(t, 1<<20)
	c := d.dial(t)
	if _, err := c.Output(context.Background(), "mkdir migrate && echo not the start of the image > migrate/image.img.gz"+partSuffix, nil); err != nil {
		t.Fatal(err)
	}
	st := uploadT(t, c, env, Options{})
	if st.Resumed != 0 || st.Sent != len(envFiles) {
		t.Errorf("%+v", st)
	}
	sameTree(t, env, d, "migrate")
}

func TestUploadTimeout(t *testing.T) {
	d := newDevice(t, sshtest.Config{}, sshtest.UserConfig{})
	env := makeEnv(t, 64<<20)
	src, _ := NewSource(env)
	c := d.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Run(ctx, c, src, "migrate", Options{})
	if !errors.Is(err, remote.ErrTimeout) || time.Since(start) > 5*time.Second {
		t.Fatalf("want timeout soon after 150ms, got %v after %v", err, time.Since(start))
	}
	// The client recovers: a new SFTP session finishes the job.
	if _, err := Run(context.Background(), c, src, "migrate", Options{}); err != nil {
		t.Fatal(err)
	}
	sameTree(t, env, d, "migrate")
}

func TestSourceRefusesOddEntries(t *testing.T) {
	env := t.TempDir()
	os.Symlink("/etc/passwd", filepath.Join(env, "link"))
	s, err := NewSource(env)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Entries(context.Background()); err == nil || !strings.Contains(err.Error(), "link") {
		t.Errorf("symlink accepted: %v", err)
	}
	if _, err := NewSource(filepath.Join(env, "missing")); err == nil {
		t.Error("missing source accepted")
	}
	os.WriteFile(filepath.Join(env, "x.zip"), []byte("zip"), 0o600)
	if _, err := NewSource(filepath.Join(env, "x.zip")); err == nil {
		t.Error("zip accepted as source")
	}
}

// An environment reaches a device that only a bastion can reach, over SFTP
// and over tar, through a connection jumped via the bastion.
func TestUploadThroughBastion(t *testing.T) {
	b := sshtest.NewBastion(t, t.TempDir(), "", sshtest.UserConfig{})
	c, err := remote.Dial(context.Background(), remote.Options{Host: "dev-1", SSHConfig: b.SSHConfig,
		KnownHosts: b.KnownHosts, HostKeyPolicy: remote.Strict, NoAgent: true, ConnectTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	env := makeEnv(t, 2<<20)
	d := &device{user: b.Login.User}
	for _, noSFTP := range []bool{false, true} {
		os.RemoveAll(d.user.Path("migrate"))
		if st := uploadT(t, c, env, Options{NoSFTP: noSFTP}); st.Sent != len(envFiles) {
			t.Errorf("noSFTP=%v: %+v", noSFTP, st)
		}
		sameTree(t, env, d, "migrate")
	}
}
