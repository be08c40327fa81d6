package stage1

import (
	"archive/zip"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/devicetype"
	"github.com/fleetmig/balena-migrate/internal/iox"
	"github.com/fleetmig/balena-migrate/internal/usage"
)

// Image failures.
var (
	ErrImage         = errors.New("bad image")
	ErrWrongDevice   = errors.New("image is for another device type")
	ErrUnknownTarget = errors.New("image device type unknown")
)

// Image is the verified balenaOS image stage 2 flashes.
type Image struct {
	Path   string // the gzip file (device path)
	SHA256 string // of the decompressed bytes
	Size   int64  // decompressed bytes
	Slug   string // device type it is built for
}

// prepareImage repacks a zip to gzip, verifies the content and its device
// type. A repacked file is recorded in the journal.
func (r *run) prepareImage(ctx context.Context) (Image, error) {
	src := r.cfg.ImageName
	st, err := r.stat(src)
	if err != nil {
		return Image{}, fmt.Errorf("%w: IMAGE_NAME %s: %w: copy the balenaOS image into %s or fix IMAGE_NAME", ErrImage, src, err, r.cfg.HomeDir)
	}
	if !st.Mode().IsRegular() {
		return Image{}, fmt.Errorf("%w: IMAGE_NAME %s is not a regular file", ErrImage, src)
	}
	names := []string{filepath.Base(src)}
	zipped := isZip(r.p(src))
	_, tagged := devicetype.SlugFromName(names[0])
	slug := ""
	if tagged || !zipped {
		// refuse a wrong image before spending minutes repacking it
		if slug, err = r.imageSlug(names); err != nil {
			return Image{}, err
		}
	}
	gz := src
	if zipped {
		var inner string
		if gz, inner, err = r.repackZip(ctx, src); err != nil {
			return Image{}, err
		}
		if slug == "" {
			if slug, err = r.imageSlug(append(names, inner)); err != nil {
				return Image{}, err
			}
		}
	}
	img, err := r.verifyGzip(ctx, gz)
	if err != nil {
		return Image{}, err
	}
	img.Slug = slug
	return img, nil
}

func isZip(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var magic [4]byte
	_, err = io.ReadFull(f, magic[:])
	return err == nil && string(magic[:]) == "PK\x03\x04"
}

// repackZip streams the image inside the zip into a gzip file next to it.
func (r *run) repackZip(ctx context.Context, src string) (string, string, error) {
	zr, err := zip.OpenReader(r.p(src))
	if err != nil {
		return "", "", fmt.Errorf("%w: %s is not a readable zip archive: %w: download it again", ErrImage, src, err)
	}
	defer zr.Close()
	var entry *zip.File
	for _, f := range zr.File {
		if !f.FileInfo().IsDir() && (entry == nil || f.UncompressedSize64 > entry.UncompressedSize64) {
			entry = f
		}
	}
	if entry == nil {
		return "", "", fmt.Errorf("%w: zip archive %s holds no image", ErrImage, src)
	}
	base := strings.TrimSuffix(filepath.Base(entry.Name), ".gz")
	if !strings.HasSuffix(base, ".img") {
		base += ".img"
	}
	dst := filepath.Join(r.cfg.HomeDir, base+".gz")
	if err := checkSpace(r.host, r.p(r.cfg.HomeDir), int64(entry.CompressedSize64)*11/10+r.cfg.MinRootAvail, "repacking the zip image to gzip"); err != nil {
		return "", "", err
	}
	r.log.Info("repacking %s (%s) to %s", src, entry.Name, dst)
	if err := r.journal.Replace(dst); err != nil {
		return "", "", err
	}
	in, err := entry.Open()
	if err != nil {
		return "", "", fmt.Errorf("%w: %s in %s: %w", ErrImage, entry.Name, src, err)
	}
	defer in.Close()
	if err := writeGzip(ctx, r.p(dst), in); err != nil {
		return "", "", fmt.Errorf("repack %s to gzip: %w", src, err)
	}
	return dst, entry.Name, nil
}

func writeGzip(ctx context.Context, dst string, in io.Reader) error {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	zw, _ := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	_, err = io.Copy(zw, iox.ContextReader(ctx, in))
	for _, step := range []func() error{zw.Close, bw.Flush, out.Sync} {
		if err == nil {
			err = step()
		}
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// verifyGzip decompresses the whole image (which checks the gzip CRC),
// checks its boot sector and hashes it for stage 2.
func (r *run) verifyGzip(ctx context.Context, path string) (Image, error) {
	f, err := os.Open(r.p(path))
	if err != nil {
		return Image{}, fmt.Errorf("%w: %s: %w", ErrImage, path, err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return Image{}, fmt.Errorf("%w: %s is neither gzip nor zip (%w): IMAGE_NAME must be an .img.gz or .zip balenaOS image", ErrImage, path, err)
	}
	h := sha256.New()
	head := &iox.Head{Max: 1024}
	n, err := io.Copy(io.MultiWriter(h, head), iox.ContextReader(ctx, zr))
	if err != nil {
		return Image{}, fmt.Errorf("%w: %s is damaged (%w): copy or download it again", ErrImage, path, err)
	}
	if err := checkBootSector(head.Buf.Bytes()); err != nil {
		return Image{}, fmt.Errorf("%w: %s: %w", ErrImage, path, err)
	}
	return Image{Path: path, SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}

// checkBootSector wants an MBR (0x55AA with a partition) or a protective MBR
// followed by a GPT header.
func checkBootSector(b []byte) error {
	if len(b) < 512 || b[510] != 0x55 || b[511] != 0xAA {
		return errors.New("the decompressed image does not start with an MBR/GPT boot sector: it is not a disk image")
	}
	if len(b) >= 520 && string(b[512:520]) == "EFI PART" {
		return nil
	}
	for i := 0; i < 4; i++ {
		if b[446+16*i+4] != 0 {
			return nil
		}
	}
	return errors.New("the boot sector of the image has no partitions: it is not a balenaOS disk image")
}

// imageSlug finds the image's device type from its name tag, else from the
// config.json deviceType, and insists it boots on this device.
func (r *run) imageSlug(names []string) (string, error) {
	cfgSlug, err := r.configDeviceType()
	if err != nil {
		return "", err
	}
	tag := ""
	for _, n := range names {
		if s, ok := devicetype.SlugFromName(filepath.Base(n)); ok {
			tag = s
			break
		}
	}
	slug := tag
	if slug == "" {
		slug = cfgSlug
	}
	if slug == "" {
		return "", fmt.Errorf("%w: %s carries no device-type tag (e.g. raspberrypi3, genericx86-64) and there is no config.json deviceType: rename the image with its tag or set BALENA_CONFIG", ErrUnknownTarget, names[0])
	}
	for _, s := range []string{tag, cfgSlug} {
		if s != "" && !r.device.Accepts(s) {
			return "", fmt.Errorf("%w: the image/config is for %s but this device is a %s (%s): use an image for this device type",
				ErrWrongDevice, s, r.device.Name, strings.Join(r.device.Slugs, ", "))
		}
	}
	r.log.Info("image %s is for %s, which boots on this %s", names[0], slug, r.device.Name)
	return slug, nil
}

// balenaConfig is the part of config.json stage 1 reads.
type balenaConfig struct {
	DeviceType string `json:"deviceType"`
	// Where the device will talk to balena: a self-hosted balena
	// (openBalena) has its own.
	APIEndpoint string `json:"apiEndpoint"`
	VPNEndpoint string `json:"vpnEndpoint"`
	VPNPort     any    `json:"vpnPort"` // a number or a string, as balena writes it
	WifiSsid    string `json:"wifiSsid"`
	WifiKey     string `json:"wifiKey"`
}

func (r *run) readBalenaConfig() (balenaConfig, bool, error) {
	if r.cfg.BalenaConfig == "" {
		return balenaConfig{}, false, nil
	}
	data, err := r.read(r.cfg.BalenaConfig)
	if errors.Is(err, fs.ErrNotExist) {
		return balenaConfig{}, false, usage.Errorf("BALENA_CONFIG %s does not exist: copy config.json into the home dir or unset it", r.cfg.BalenaConfig)
	}
	if err != nil {
		return balenaConfig{}, false, err
	}
	var bc balenaConfig
	if err := json.Unmarshal(data, &bc); err != nil {
		return balenaConfig{}, false, usage.Errorf("BALENA_CONFIG %s is not valid JSON: %w", r.cfg.BalenaConfig, err)
	}
	return bc, true, nil
}

func (r *run) configDeviceType() (string, error) {
	bc, _, err := r.readBalenaConfig()
	return bc.DeviceType, err
}
