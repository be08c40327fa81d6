package stage1

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrBackup marks a failed backup.
var ErrBackup = errors.New("backup failed")

// backupName is the archive stage 2 unpacks into resin-data.
const backupName = "backup.tgz"

// makeBackup creates HOME_DIR/backup.tgz with BACKUP_SCRIPT, else from
// BACKUP_DIRECTORIES. It returns "" when there is nothing to back up.
func (r *run) makeBackup(ctx context.Context) (string, error) {
	if r.cfg.BackupScript == "" && len(r.cfg.BackupDirs) == 0 {
		r.log.Info("no BACKUP_SCRIPT and no BACKUP_DIRECTORIES: no backup")
		return "", nil
	}
	dst := filepath.Join(r.cfg.HomeDir, backupName)
	if err := r.journal.Replace(dst); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBackup, err)
	}
	if r.cfg.BackupScript != "" {
		r.log.Info("running backup script %s %s", r.cfg.BackupScript, dst)
		if _, err := r.host.Run(ctx, nil, r.cfg.BackupScript, dst); err != nil {
			return "", fmt.Errorf("%w: BACKUP_SCRIPT: %w: fix the script (it is called with the archive path and must write a tar.gz there)", ErrBackup, err)
		}
		if err := checkGzip(r.p(dst)); err != nil {
			return "", fmt.Errorf("%w: BACKUP_SCRIPT %s did not write a gzip archive to %s: %w", ErrBackup, r.cfg.BackupScript, dst, err)
		}
	} else {
		r.log.Info("backing up %s to %s", strings.Join(r.cfg.BackupDirs, " "), dst)
		if err := r.tarDirs(ctx, dst, r.cfg.BackupDirs); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return "", fmt.Errorf("%w: %w: fix BACKUP_DIRECTORIES", ErrBackup, err)
			}
			return "", fmt.Errorf("%w: %w", ErrBackup, err)
		}
	}
	st, err := r.stat(dst)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBackup, err)
	}
	r.log.Info("backup %s: %d KiB", dst, st.Size()>>10)
	if err := checkSpace(r.host, r.p(r.cfg.HomeDir), r.cfg.MinRootAvail, "the initramfs after the backup"); err != nil {
		return "", fmt.Errorf("%w: %w: make the backup smaller (BACKUP_DIRECTORIES)", ErrBackup, err)
	}
	return backupName, nil
}

func checkGzip(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, zr)
	return err
}

// tarDirs writes a gzip'd tar of dirs (device paths), names relative to /.
func (r *run) tarDirs(ctx context.Context, dst string, dirs []string) error {
	out, err := os.OpenFile(r.p(dst), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	bw := bufio.NewWriterSize(out, 1<<20)
	zw := gzip.NewWriter(bw)
	tw := tar.NewWriter(zw)
	for _, d := range dirs {
		if !filepath.IsAbs(d) {
			d = filepath.Join(r.cfg.HomeDir, d)
		}
		if err := r.tarTree(ctx, tw, filepath.Clean(d)); err != nil {
			return err
		}
	}
	for _, step := range []func() error{tw.Close, zw.Close, bw.Flush, out.Sync} {
		if err := step(); err != nil {
			return err
		}
	}
	return out.Close()
}

func (r *run) tarTree(ctx context.Context, tw *tar.Writer, dir string) error {
	return filepath.WalkDir(r.p(dir), func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(r.root, p)
		return addTarEntry(tw, p, filepath.ToSlash(rel), de)
	})
}

func addTarEntry(tw *tar.Writer, p, name string, de fs.DirEntry) error {
	info, err := de.Info()
	if err != nil {
		return err
	}
	link := ""
	switch {
	case info.Mode()&fs.ModeSymlink != 0:
		if link, err = os.Readlink(p); err != nil {
			return err
		}
	case info.IsDir(), info.Mode().IsRegular():
	default:
		return nil // sockets, fifos and devices do not belong in a backup
	}
	hdr, err := tar.FileInfoHeader(info, link)
	if err != nil {
		return err
	}
	hdr.Name = name
	if info.IsDir() {
		hdr.Name += "/"
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}
