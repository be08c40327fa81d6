package stage1

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/fleetmig/balena-migrate/internal/device/endpoints"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/device/blkdev"
	"github.com/fleetmig/balena-migrate/internal/device/ext4"
	"github.com/fleetmig/balena-migrate/internal/devicetype"
	"github.com/fleetmig/balena-migrate/internal/fsutil"
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
	// Data is the superblock of the image's resin-data, where stage 2
	// writes the backup and its log.
	Data ext4.Superblock
}

// imageKind is how the image file is packed.
type imageKind int

const (
	kindUnknown imageKind = iota
	kindGzip
	kindZip
	kindRaw // a plain disk image: a boot sector with 0x55AA
)

// kindOf tells the packing from the file's first bytes, whatever its name.
func kindOf(path string) imageKind {
	f, err := os.Open(path)
	if err != nil {
		return kindUnknown
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return kindZip
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return kindGzip
	case n == 512 && head[510] == 0x55 && head[511] == 0xAA:
		return kindRaw
	}
	return kindUnknown
}

// prepareImage packs a zip or a raw image as gzip (once: stage 2 reads the
// gzip), verifies the content and its device type. A file it writes is
// recorded in the journal.
func (r *run) prepareImage(ctx context.Context, d devicetype.Device) (Image, error) {
	src := r.cfg.ImageName
	st, err := r.stat(src)
	if err != nil {
		return Image{}, fmt.Errorf("%w: IMAGE_NAME %s: %w: copy the balenaOS image into %s or fix IMAGE_NAME", ErrImage, src, err, r.cfg.HomeDir)
	}
	if !st.Mode().IsRegular() {
		return Image{}, fmt.Errorf("%w: IMAGE_NAME %s is not a regular file", ErrImage, src)
	}
	kind := kindOf(r.p(src))
	if kind == kindUnknown {
		return Image{}, fmt.Errorf("%w: IMAGE_NAME %s is neither a disk image (.img), gzip (.img.gz) nor zip: use the balenaOS image as downloaded", ErrImage, src)
	}
	names := []string{filepath.Base(src)}
	_, tagged := devicetype.SlugFromName(names[0])
	slug := ""
	if tagged || kind != kindZip {
		// refuse a wrong image before spending minutes packing it
		if slug, err = r.imageSlug(names, d); err != nil {
			return Image{}, err
		}
	}
	gz := src
	switch kind {
	case kindZip:
		var inner string
		if gz, inner, err = r.repackZip(ctx, src); err != nil {
			return Image{}, err
		}
		if slug == "" {
			if slug, err = r.imageSlug(append(names, inner), d); err != nil {
				return Image{}, err
			}
		}
	case kindRaw:
		if gz, err = r.compressRaw(ctx, src, st.Size()); err != nil {
			return Image{}, err
		}
	}
	img, err := r.verifyGzip(ctx, gz)
	if err != nil {
		return Image{}, err
	}
	img.Slug = slug
	return img, nil
}

// compressRaw writes a gzip copy of a raw disk image next to it. Disk images
// are mostly empty space, so a quarter of the raw size is asked for up front;
// running out later fails the write, which the journal undoes.
func (r *run) compressRaw(ctx context.Context, src string, size int64) (string, error) {
	dst := filepath.Join(r.cfg.HomeDir, filepath.Base(src)+".gz")
	if err := checkSpace(r.host, r.p(r.cfg.HomeDir), size/4+r.cfg.MinRootAvail, "compressing the raw image"); err != nil {
		return "", err
	}
	r.log.Info("compressing the raw image %s (%d MiB) to %s, once", src, size>>20, dst)
	if err := r.journal.Replace(dst); err != nil {
		return "", err
	}
	in, err := os.Open(r.p(src))
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrImage, src, err)
	}
	defer in.Close()
	if err := writeGzipOnce(ctx, r.p(dst), bufio.NewReaderSize(in, 1<<20)); err != nil {
		return "", fmt.Errorf("compress %s: %w", src, err)
	}
	return dst, nil
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
	if err := writeGzipOnce(ctx, r.p(dst), in); err != nil {
		return "", "", fmt.Errorf("repack %s to gzip: %w", src, err)
	}
	return dst, entry.Name, nil
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
		return Image{}, fmt.Errorf("%w: %s is not a readable gzip file (%w): copy or download it again", ErrImage, path, err)
	}
	h := sha256.New()
	head := &iox.Head{Max: gptHeadSize}
	heads := blkdev.NewHeads()
	n, err := io.Copy(io.MultiWriter(h, head, heads), iox.ContextReader(ctx, zr))
	if err != nil {
		return Image{}, fmt.Errorf("%w: %s is damaged (%w): copy or download it again", ErrImage, path, err)
	}
	gpt, err := checkBootSector(head.Buf.Bytes(), n)
	if err != nil {
		return Image{}, fmt.Errorf("%w: %s: %w", ErrImage, path, err)
	}
	if gpt > 0 {
		r.log.Info("image %s: GPT with %d partitions, checksums and size consistent", path, gpt)
	}
	data, err := stage2Partitions(heads)
	if err != nil {
		return Image{}, fmt.Errorf("%w: %s %w", ErrImage, path, err)
	}
	r.log.Info("image %s: resin-boot (vfat) and resin-data (ext4, %d MiB free) found as stage 2 will find them", path, data.FreeBytes>>20)
	return Image{Path: path, SHA256: hex.EncodeToString(h.Sum(nil)), Size: n, Data: data}, nil
}

// gptHeadSize is how much of the image start is kept for the checks: the
// GPT header and its entry array (128 entries of 128 bytes from LBA 2).
const gptHeadSize = 64 << 10

// checkBootSector wants an MBR (0x55AA with a partition) or a protective MBR
// followed by a consistent GPT; size is the whole image's. It returns the
// number of GPT partitions (0 for an MBR image).
func checkBootSector(b []byte, size int64) (int, error) {
	if len(b) < 512 || b[510] != 0x55 || b[511] != 0xAA {
		return 0, errors.New("the decompressed image does not start with an MBR/GPT boot sector: it is not a disk image")
	}
	if len(b) >= 520 && string(b[512:520]) == "EFI PART" {
		parts, err := blkdev.CheckGPT(bytes.NewReader(b), size)
		if err != nil {
			return 0, fmt.Errorf("%w: download the image again", err)
		}
		return len(parts), nil
	}
	for i := 0; i < 4; i++ {
		if b[446+16*i+4] != 0 {
			return 0, nil
		}
	}
	return 0, errors.New("the boot sector of the image has no partitions: it is not a balenaOS disk image")
}

// imageSlug finds the image's device type from its name tag, else from the
// config.json deviceType, and insists it boots on d.
func (r *run) imageSlug(names []string, d devicetype.Device) (string, error) {
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
		if s != "" && !d.Accepts(s) {
			return "", fmt.Errorf("%w: the image/config is for %s but this device is a %s (%s): use an image for this device type",
				ErrWrongDevice, s, d.Name, strings.Join(d.Slugs, ", "))
		}
	}
	r.log.Info("image %s is for %s, which boots on this %s", names[0], slug, d.Name)
	return slug, nil
}

// balenaConfig is the part of config.json stage 1 reads.
type balenaConfig struct {
	DeviceType string `json:"deviceType"`
	// Where the device will talk to balena: a self-hosted balena
	// (openBalena) has its own.
	endpoints.Config
	WifiSsid string `json:"wifiSsid"`
	WifiKey  string `json:"wifiKey"`
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

// writeGzipOnce compresses in to dst, quickly: the image is read again
// and hashed as a whole afterwards.
func writeGzipOnce(ctx context.Context, dst string, in io.Reader) error {
	_, err := fsutil.WriteGzip(ctx, dst, in, gzip.BestSpeed, false)
	return err
}
