package spool

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/usage"
)

// Workers and reports open only a database that exists; add-unit makes one
// and says so; a db/ directory given as the base is refused by all.
func TestOpenNeverCreatesByAccident(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(base string) string // returns the base to give
		want    error                    // OpenExisting's error; nil: it opens
		created bool                     // what Create says it did
	}{
		{"empty directory", func(b string) string { return b }, ErrNoDatabase, true},
		{"missing directory", func(b string) string { return filepath.Join(b, "nowhere") }, ErrNoDatabase, true},
		{"a database", func(b string) string { mustOpen(t, b); return b }, nil, false},
		{"a database missing a subdirectory", func(b string) string {
			mustOpen(t, b)
			os.Remove(filepath.Join(b, "db", "done"))
			return b
		}, nil, false},
		{"the db/ directory itself", func(b string) string { mustOpen(t, b); return filepath.Join(b, "db") }, ErrDatabaseAsBase, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := tc.prepare(t.TempDir())
			before := treeOf(t, base)
			db, err := OpenExisting(base)
			if !errors.Is(err, tc.want) || (err != nil) != (tc.want != nil) {
				t.Fatalf("OpenExisting(%s) = %v, want %v", base, err, tc.want)
			}
			if err != nil {
				if !usage.Is(err) || !strings.Contains(err.Error(), base) {
					t.Errorf("error %q is not a usage error naming %s", err, base)
				}
				if after := treeOf(t, base); after != before {
					t.Errorf("OpenExisting changed %s: %q -> %q", base, before, after)
				}
			} else if _, err := os.Stat(db.Path(Done)); err != nil {
				t.Errorf("missing subdirectory not made: %v", err)
			}
			db, created, err := Create(base)
			switch {
			case errors.Is(tc.want, ErrDatabaseAsBase):
				if !errors.Is(err, ErrDatabaseAsBase) || !usage.Is(err) || !strings.Contains(err.Error(), filepath.Dir(base)) {
					t.Errorf("Create(%s) = %v, want a refusal naming the parent", base, err)
				}
			case err != nil || created != tc.created:
				t.Errorf("Create(%s) = created %v, %v; want created %v", base, created, err, tc.created)
			default:
				if _, err := OpenExisting(base); err != nil || db.Root() != filepath.Join(base, "db") {
					t.Errorf("after Create, OpenExisting(%s) = %v (root %s)", base, err, db.Root())
				}
			}
		})
	}
}

func mustOpen(t *testing.T, base string) {
	t.Helper()
	if _, err := Open(base); err != nil {
		t.Fatal(err)
	}
}

// treeOf is every path under dir, or "absent".
func treeOf(t *testing.T, dir string) string {
	var out []string
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		out = append(out, p)
		return err
	})
	if errors.Is(err, os.ErrNotExist) {
		return "absent"
	}
	return strings.Join(out, " ")
}
