package stage1

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestJournalRollbackRestoresEverything(t *testing.T) {
	root := t.TempDir()
	w := func(p, s string, perm os.FileMode) {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), perm); err != nil {
			t.Fatal(err)
		}
	}
	w("/boot/config.txt", "orig config\n", 0o755)
	w("/home/m/backup.tgz", "old backup", 0o600)
	w("/home/m/initramfs-tools/initramfs.conf", "old conf", 0o644)
	w("/etc/hostname", "device\n", 0o644)
	c := &chroot{t: t, dir: root}
	before := c.snapshot("/")

	j := newJournal(root)
	steps := []func() error{
		func() error { return j.Write("/boot/config.txt", []byte("changed\n"), 0o644) },
		func() error { return j.Write("/etc/new.conf", []byte("new\n"), 0o600) },
		func() error { return j.Mkdir("/home/m/newdir", 0o755) },
		func() error { return j.Replace("/home/m/backup.tgz") },
		func() error {
			return os.WriteFile(filepath.Join(root, "/home/m/backup.tgz"), []byte("new backup"), 0o600)
		},
		func() error { return j.Replace("/home/m/initramfs-tools") },
		func() error { return os.Mkdir(filepath.Join(root, "/home/m/initramfs-tools"), 0o755) },
		func() error { return j.Write("/boot/config.txt", []byte("changed twice\n"), 0o644) },
	}
	for i, s := range steps {
		if err := s(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if diff := diffSnapshots(before, c.snapshot("/")); len(diff) == 0 {
		t.Fatal("the steps changed nothing")
	}
	if err := j.Rollback(); err != nil {
		t.Fatal(err)
	}
	if diff := diffSnapshots(before, c.snapshot("/")); len(diff) > 0 {
		t.Fatalf("rollback left: %v", diff)
	}
	if st, _ := os.Stat(filepath.Join(root, "/boot/config.txt")); st.Mode().Perm() != 0o755 {
		t.Fatalf("mode not restored: %v", st.Mode())
	}
}

func TestJournalCommitAndRefusals(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "out"), []byte("old"), 0o644)
	j := newJournal(root)
	if err := j.Add("/out"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("Add over an existing file: %v", err)
	}
	if err := j.Replace("/out"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "out"), []byte("new"), 0o644)
	if err := j.Commit(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "out")); string(b) != "new" {
		t.Fatalf("commit lost the new file: %q", b)
	}
	if _, err := os.Stat(filepath.Join(root, "out.balena-migrate-old")); !os.IsNotExist(err) {
		t.Fatalf("commit left the old file: %v", err)
	}
	if j.Len() != 0 || j.Rollback() != nil {
		t.Fatal("a committed journal still has entries")
	}
	os.Mkdir(filepath.Join(root, "dir"), 0o755)
	if err := j.Change("/dir"); err == nil {
		t.Fatal("Change accepted a directory it cannot back up")
	}
}
