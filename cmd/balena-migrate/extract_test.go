package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/fleetmig/balena-migrate/internal/envfile"
	"github.com/fleetmig/balena-migrate/internal/exitcode"
	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
)

func runExtract(args ...string) error {
	app := &cli.App{Name: "balena-migrate", Commands: []*cli.Command{extractCommand()}, ExitErrHandler: func(*cli.Context, error) {}}
	return app.Run(append([]string{"balena-migrate", "extract"}, args...))
}

func TestExtractCommand(t *testing.T) {
	dir := t.TempDir()
	inner := filepath.Join(dir, "inner.img")
	if _, err := testimg.BalenaOS(inner); err != nil {
		t.Fatal(err)
	}
	flasher := filepath.Join(dir, "flasher.img")
	if _, err := testimg.Flasher(flasher, inner, testimg.FlasherFiles{ImageName: "a.balenaos-img"}); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "balena-migrate.conf")
	if err := runExtract("--img", filepath.Join(dir, "os.img.gz"), "--grub", filepath.Join(dir, "grub.cfg"), "--config", conf, flasher); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "os.img.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, _ := gzip.NewReader(f)
	got, _ := io.ReadAll(zr)
	want, _ := os.ReadFile(inner)
	if !bytes.Equal(got, want) {
		t.Error("extracted image differs")
	}
	if c, err := envfile.Read(conf); err != nil || c.Value("IMAGE_NAME") != "os.img.gz" || c.Value("GRUB_CFG") != "grub.cfg" {
		t.Errorf("config: %v %v", c, err)
	}
	for _, args := range [][]string{{flasher}, {"--img", "x.gz"}, {"--img", "x.gz", "a", "b"}} {
		if err := runExtract(args...); exitcode.Of(err) != 2 {
			t.Errorf("extract %v: want exit code 2, got %d (%v)", args, exitcode.Of(err), err)
		}
	}
	if err := runExtract("--img", filepath.Join(dir, "x.gz"), filepath.Join(dir, "missing.img")); exitcode.Of(err) != 1 {
		t.Errorf("missing flasher: want exit code 1, got %d (%v)", exitcode.Of(err), err)
	}
}
