package extract_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetmig/balena-migrate/internal/device/extract"
	"github.com/fleetmig/balena-migrate/internal/envfile"
	"github.com/fleetmig/balena-migrate/internal/testenv/testimg"
)

type fixture struct {
	dir, flasher string
	inner        []byte
	ff           testimg.FlasherFiles
}

func newFixture(t *testing.T, ff testimg.FlasherFiles) fixture {
	t.Helper()
	dir := t.TempDir()
	inner, err := testimg.BalenaOS(filepath.Join(dir, "inner.img"))
	if err != nil {
		t.Fatal(err)
	}
	flasher := filepath.Join(dir, "flasher.img")
	if _, err := testimg.Flasher(flasher, inner.Path, ff); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(inner.Path)
	os.Remove(inner.Path)
	return fixture{dir: dir, flasher: flasher, inner: data, ff: ff}
}

func gunzip(t *testing.T, path string) []byte {
	t.Helper()
	data, err := testimg.Gunzip(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestExtractRawFlasher(t *testing.T) {
	core := bytes.Repeat([]byte("CORE"), 3000) // 12000 bytes → 24 sectors
	fx := newFixture(t, testimg.FlasherFiles{ImageName: "resin-image-genericx86-64.resinos-img",
		InternalCfg: []byte("# installed grub.cfg\n"), BootCode: bytes.Repeat([]byte{0xEB}, 440), Core: core})
	out := filepath.Join(fx.dir, "out")
	os.Mkdir(out, 0o755)
	conf := filepath.Join(out, "balena-migrate.conf")
	os.WriteFile(conf, []byte("DEBUG=TRUE\nIMAGE_NAME=old.img.gz\n"), 0o600)
	opts := extract.Options{Flasher: fx.flasher, Image: filepath.Join(out, "balena.img.gz"),
		GrubCfg: filepath.Join(out, "grub.cfg"), GrubBoot: filepath.Join(out, "boot.img"), GrubCore: filepath.Join(out, "core.img"),
		BalenaCfg: filepath.Join(fx.dir, "config.json"), Config: conf}
	os.WriteFile(opts.BalenaCfg, []byte("{}"), 0o600)
	res, err := extract.Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := gunzip(t, opts.Image); !bytes.Equal(got, fx.inner) {
		t.Fatalf("extracted image differs from the original (%d vs %d bytes)", len(got), len(fx.inner))
	}
	if res.ImageSource != "/opt/resin-image-genericx86-64.resinos-img" || res.ImageSize != int64(len(fx.inner)) {
		t.Errorf("result %+v", res)
	}
	os.WriteFile(filepath.Join(fx.dir, "inner.check"), fx.inner, 0o644)
	if sha, _ := testimg.SHA256File(filepath.Join(fx.dir, "inner.check"), -1); sha != res.ImageSHA256 {
		t.Errorf("ImageSHA256 %s, want %s", res.ImageSHA256, sha)
	}
	if got, _ := os.ReadFile(opts.GrubCfg); string(got) != "# installed grub.cfg\n" {
		t.Errorf("grub.cfg = %q", got)
	}
	flasher, _ := os.ReadFile(fx.flasher)
	if got, _ := os.ReadFile(opts.GrubBoot); !bytes.Equal(got, flasher[:512]) {
		t.Errorf("boot.img is not the flasher's MBR")
	}
	wantCore := append(append([]byte{}, core...), make([]byte, 24*512-len(core))...)
	if got, _ := os.ReadFile(opts.GrubCore); !bytes.Equal(got, wantCore) {
		t.Errorf("core.img: %d bytes, want %d", len(got), len(wantCore))
	}
	f, err := envfile.Read(conf)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"DEBUG": "TRUE", "IMAGE_NAME": "balena.img.gz", "GRUB_CFG": "grub.cfg",
		"GRUB_BOOT_IMG": "boot.img", "GRUB_CORE_IMG": "core.img", "BALENA_CONFIG": opts.BalenaCfg}
	for k, v := range want {
		if got := f.Value(k); got != v {
			t.Errorf("config %s = %q, want %q", k, got, v)
		}
	}
	// bash reads the same config.
	b, err := exec.Command("bash", "-c", `. "$1"; echo "$IMAGE_NAME $GRUB_CORE_IMG"`, "_", conf).Output()
	if err != nil || strings.TrimSpace(string(b)) != "balena.img.gz core.img" {
		t.Errorf("bash read %q, %v", b, err)
	}
}

func TestExtractZipFallsBackToImageGrubCfg(t *testing.T) {
	for _, method := range []string{"-6", "-0"} { // deflated, stored
		t.Run(method, func(t *testing.T) {
			fx := newFixture(t, testimg.FlasherFiles{ImageName: "balena-image-genericx86-64.balenaos-img"})
			zipPath := filepath.Join(fx.dir, "flasher.img.zip")
			if out, err := exec.Command("zip", "-q", "-j", method, zipPath, fx.flasher).CombinedOutput(); err != nil {
				t.Fatalf("zip: %v %s", err, out)
			}
			os.Remove(fx.flasher)
			out := filepath.Join(fx.dir, "out")
			os.Mkdir(out, 0o755)
			opts := extract.Options{Flasher: zipPath, Image: filepath.Join(out, "b.img.gz"), GrubCfg: filepath.Join(out, "grub.cfg"),
				Config: filepath.Join(out, "new.conf")}
			res, err := extract.Run(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(gunzip(t, opts.Image), fx.inner) {
				t.Fatal("extracted image differs")
			}
			if got, _ := os.ReadFile(opts.GrubCfg); string(got) != "# balenaOS grub.cfg from resin-boot\n" || !strings.Contains(res.GrubCfgFrom, "resin-boot") {
				t.Errorf("grub.cfg = %q from %q", got, res.GrubCfgFrom)
			}
			names, _ := filepath.Glob(filepath.Join(out, "*"))
			if len(names) != 3 {
				t.Errorf("output dir holds %v, want image, grub.cfg and config only", names)
			}
			f, _ := envfile.Read(opts.Config)
			if f == nil || f.Value("IMAGE_NAME") != "b.img.gz" || f.Value("GRUB_CFG") != "grub.cfg" {
				t.Errorf("new config: %+v", f)
			}
		})
	}
}

func TestExtractRefusesImageWithoutBalenaOS(t *testing.T) {
	dir := t.TempDir()
	img, err := testimg.BalenaOS(filepath.Join(dir, "not-a-flasher.img"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.img.gz")
	_, err = extract.Run(context.Background(), extract.Options{Flasher: img.Path, Image: out, GrubBoot: filepath.Join(dir, "boot.img")})
	if !errors.Is(err, extract.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Error("output written for a bad flasher")
	}
	if _, err := extract.Run(context.Background(), extract.Options{Flasher: img.Path, Image: out, BalenaCfg: filepath.Join(dir, "nope.json")}); err == nil || !strings.Contains(err.Error(), "--balena-cfg") {
		t.Errorf("missing --balena-cfg file: err = %v", err)
	}
	// No boot code in the MBR and none in the image: boot.img cannot be made.
	inner := filepath.Join(dir, "inner.img")
	testimg.BalenaOS(inner)
	fl := filepath.Join(dir, "fl.img")
	if _, err := testimg.Flasher(fl, inner, testimg.FlasherFiles{ImageName: "x.resinos-img"}); err != nil {
		t.Fatal(err)
	}
	_, err = extract.Run(context.Background(), extract.Options{Flasher: fl, Image: out, GrubBoot: filepath.Join(dir, "boot.img")})
	if !errors.Is(err, extract.ErrNotFound) || !strings.Contains(err.Error(), "boot") {
		t.Fatalf("err = %v, want ErrNotFound for boot.img", err)
	}
}

// A flasher downloaded as .img.gz is unpacked and read like a raw one.
func TestExtractGzipFlasher(t *testing.T) {
	fx := newFixture(t, testimg.FlasherFiles{ImageName: "balena-image-genericx86-64-ext.balenaos-img",
		InternalCfg: []byte("# installed grub.cfg\n")})
	raw, err := os.ReadFile(fx.flasher)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(raw)
	zw.Close()
	gzPath := fx.flasher + ".gz"
	if err := os.WriteFile(gzPath, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	opts := extract.Options{Flasher: gzPath, Image: filepath.Join(out, "balena.img.gz"), GrubCfg: filepath.Join(out, "grub.cfg")}
	res, err := extract.Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := gunzip(t, opts.Image); !bytes.Equal(got, fx.inner) || res.ImageSource != "/opt/balena-image-genericx86-64-ext.balenaos-img" {
		t.Fatalf("extracted %d bytes from %s, want the %d of the inner image", len(got), res.ImageSource, len(fx.inner))
	}
	if left, _ := filepath.Glob(filepath.Join(out, ".flasher-*")); len(left) > 0 {
		t.Errorf("the unpacked flasher is left behind: %v", left)
	}
}
