package stage1

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The next stage-1 run removes what an earlier run left for a stage-2 boot
// that is over, and nothing of a setup whose boot is still to come.
func TestRemoveStaleLeftovers(t *testing.T) {
	const earlier = "0c8d7e66-1d1b-4b7e-a0b4-2d1d5e0f9a01"
	left := []string{grubScript, "/boot/balena-migrate-initramfs-6.1.0-21-amd64", cleanupRecord}
	for _, tc := range []struct {
		name    string
		record  string // "" for none
		now     string // "" for an unreadable boot id
		removed bool
		log     string
	}{
		{"another boot", cleanupScript(earlier, left), testBootID, true, "removed /etc/grub.d/42_balena, left by an earlier run for a stage-2 boot that is over"},
		{"this boot: the stage-2 boot is still to come", cleanupScript(testBootID, left), testBootID, false, ""},
		{"boot id unreadable", cleanupScript(earlier, left), "", false, ""},
		{"no record", "", testBootID, false, ""},
		{"a record it cannot read", "#!/bin/sh\nrm -f -- '/etc/grub.d/42_balena'\n", testBootID, false, "WARN: /etc/balena-migrate-cleanup: no boot id in it; left as it is"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			tree := map[string]string{grubScript: "#!/bin/sh\n", left[1]: ours}
			if tc.record != "" {
				tree[cleanupRecord] = tc.record
			}
			if tc.now != "" {
				tree[bootIDFile] = tc.now + "\n"
			}
			writeTree(t, root, tree)
			var log bytes.Buffer
			r := &run{files: files{root}, log: &Log{W: &log}}
			r.removeStaleLeftovers()
			for _, p := range left[:2] {
				_, err := os.Stat(filepath.Join(root, p))
				if gone := os.IsNotExist(err); gone != tc.removed {
					t.Errorf("%s removed: %t, want %t", p, gone, tc.removed)
				}
			}
			if tc.log != "" && !strings.Contains(log.String(), tc.log) {
				t.Errorf("log lacks %q:\n%s", tc.log, log.String())
			}
			if tc.log == "" && log.Len() > 0 {
				t.Errorf("unexpected log:\n%s", log.String())
			}
		})
	}
}

func TestCleanupScriptRoundTrip(t *testing.T) {
	left := []string{grubScript, "/boot/balena-migrate-initramfs-6.1.0-21-amd64", cleanupWants, cleanupUnit, cleanupRecord}
	id, got, err := parseCleanupScript([]byte(cleanupScript(testBootID, left)))
	if err != nil || id != testBootID || strings.Join(got, " ") != strings.Join(left, " ") {
		t.Fatalf("got %q %q %v", id, got, err)
	}
}
