package stage1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/fsutil"
)

// What stage 1 installs for the stage-2 boot only (grub's script, the
// stage-2 initramfs on /) must not outlive that boot: a later update-grub
// would offer an entry that flashes an old image. Stage 2 removes it as it
// hands back (CLEANUP_FILES). When stage 2 never ran (the stage-2 boot
// failed before it and the old system came back), a cleanup record does:
// a shell script that the old system runs on its next boot (a systemd unit)
// and that the next stage-1 run reads. It names the boot stage 1 ran in, so
// neither removes a setup whose boot is still to come.
const (
	cleanupRecord = "/etc/balena-migrate-cleanup"
	cleanupUnit   = "/etc/systemd/system/balena-migrate-cleanup.service"
	cleanupWants  = "/etc/systemd/system/multi-user.target.wants/balena-migrate-cleanup.service"
	bootIDFile    = "/proc/sys/kernel/random/boot_id"
)

// cleanupUnitText runs the record once the old system has booted.
const cleanupUnitText = `[Unit]
Description=balena-migrate: remove what a migration installed for its stage-2 boot, which is over
ConditionPathExists=` + cleanupRecord + `

[Service]
Type=oneshot
ExecStart=/bin/sh ` + cleanupRecord + `

[Install]
WantedBy=multi-user.target
`

// leftovers are the files to remove once the stage-2 boot is over: the
// boot setup's own, and the cleanup record with its systemd unit (on a
// system that has /etc/systemd/system). None when the setup leaves nothing
// on the root file system.
func (f files) leftovers(p bootPlan) []string {
	out := p.leftovers()
	if len(out) == 0 {
		return nil
	}
	if f.isDir("/etc/systemd/system") {
		out = append(out, cleanupWants, cleanupUnit)
	}
	return append(out, cleanupRecord)
}

func (f files) isDir(name string) bool {
	st, err := os.Stat(f.p(name))
	return err == nil && st.IsDir()
}

// bootID is the kernel's id of the running boot ("" if unreadable).
func (f files) bootID() string {
	data, err := f.read(bootIDFile)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// cleanupScript is the record: removed is every leftover, the record last.
func cleanupScript(bootID string, removed []string) string {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	b.WriteString("# balena-migrate: what stage 1 installed for the stage-2 boot. Once the\n")
	b.WriteString("# boot it ran in is over, the stage-2 boot is too: this removes it.\n")
	fmt.Fprintf(&b, "[ \"$(cat %s)\" = '%s' ] && exit 0\n", bootIDFile, bootID)
	for _, p := range removed {
		fmt.Fprintf(&b, "rm -f -- '%s'\n", p)
	}
	return b.String()
}

// parseCleanupScript reads back the boot id and the paths of a record.
func parseCleanupScript(data []byte) (bootID string, removed []string, err error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		l := sc.Text()
		if rest, ok := strings.CutPrefix(l, "[ \"$(cat "+bootIDFile+")\" = '"); ok {
			bootID, _, _ = strings.Cut(rest, "'")
		}
		if rest, ok := strings.CutPrefix(l, "rm -f -- '"); ok {
			if p, ok := strings.CutSuffix(rest, "'"); ok && filepath.IsAbs(p) {
				removed = append(removed, p)
			}
		}
	}
	if bootID == "" {
		return "", nil, errors.New("no boot id in it")
	}
	return bootID, removed, sc.Err()
}

// installCleanup writes the record and, with systemd, its unit, through
// the journal: they go with everything else if the setup fails.
func (e bootEnv) installCleanup(removed []string) error {
	if len(removed) == 0 {
		return nil
	}
	id := e.bootID()
	if id == "" {
		return fmt.Errorf("%w: cannot read %s, which tells the stage-2 boot from later ones", ErrBootSetup, bootIDFile)
	}
	for _, p := range removed {
		if strings.ContainsAny(p, "'\n") {
			return fmt.Errorf("%w: %q cannot go into %s", ErrBootSetup, p, cleanupRecord)
		}
	}
	if err := e.journal.Write(cleanupRecord, []byte(cleanupScript(id, removed)), 0o755); err != nil {
		return fmt.Errorf("%w: %w", ErrBootSetup, err)
	}
	paths := []string{cleanupRecord}
	if slices.Contains(removed, cleanupUnit) {
		if err := e.journal.Write(cleanupUnit, []byte(cleanupUnitText), 0o644); err != nil {
			return fmt.Errorf("%w: %w", ErrBootSetup, err)
		}
		if !e.isDir(filepath.Dir(cleanupWants)) {
			if err := e.journal.Mkdir(filepath.Dir(cleanupWants), 0o755); err != nil {
				return fmt.Errorf("%w: %w", ErrBootSetup, err)
			}
		}
		if err := e.journal.Symlink("../"+filepath.Base(cleanupUnit), cleanupWants); err != nil {
			return fmt.Errorf("%w: %w", ErrBootSetup, err)
		}
		paths = append(paths, cleanupUnit, cleanupWants)
	}
	if err := e.durable(paths...); err != nil {
		return err
	}
	e.log.Info("the old system's next boot removes what the stage-2 boot needs only (%s)", cleanupRecord)
	return nil
}

// removeStaleLeftovers removes what an earlier run installed for a stage-2
// boot that is over (the record names another boot than this one): a run
// refused now must not leave it for a later update-grub. A setup made in
// this very boot is left for the boot it waits for.
func (r *run) removeStaleLeftovers() {
	data, err := r.read(cleanupRecord)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var id string
	var removed []string
	if err == nil {
		id, removed, err = parseCleanupScript(data)
	}
	if err != nil {
		r.log.Warn("%s: %v; left as it is", cleanupRecord, err)
		return
	}
	now := r.bootID()
	if now == "" || now == id {
		return
	}
	for _, p := range removed {
		err := os.Remove(r.p(p))
		switch {
		case err == nil:
			_ = fsutil.SyncDir(filepath.Dir(r.p(p)))
			r.log.Info("removed %s, left by an earlier run for a stage-2 boot that is over", p)
		case !errors.Is(err, fs.ErrNotExist):
			r.log.Warn("remove %s, left by an earlier run: %v", p, err)
		}
	}
}
