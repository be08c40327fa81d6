package stage1

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/devicetype"
	"github.com/fleetmig/balena-migrate/internal/iox"
)

// Check failures the caller (and the fleet worker, through the message) can tell apart.
var (
	ErrNotRoot     = errors.New("not running as root")
	ErrUnsupported = errors.New("unsupported system")
	ErrMissingProg = errors.New("required program missing")
	ErrChecksum    = errors.New("checksum mismatch")
)

func (f files) detectDevice(machine string) (devicetype.Device, error) {
	cpuinfo, _ := f.read("/proc/cpuinfo")
	model, err := f.read("/proc/device-tree/model")
	if err != nil {
		// the node that proc link points to, where the link is missing (a
		// chroot on a machine without a device tree)
		model, _ = f.read("/sys/firmware/devicetree/base/model")
	}
	d, err := devicetype.Detect(devicetype.Inputs{Machine: machine, CPUInfo: string(cpuinfo), DTModel: string(model), EFI: f.exists("/sys/firmware/efi")})
	if err != nil {
		return d, err // devicetype.ErrUnknown, which is ErrDeviceType
	}
	return d, nil
}

// requiredPrograms are the programs stage 1 runs on this device, with
// those its boot setup runs.
func requiredPrograms(c *Config, boot []string) []string {
	progs := append(append([]string{"mkinitramfs", "lsinitramfs"}, stage2Programs(c)...), boot...)
	if c.Reboot >= 0 && !c.NoSetup {
		progs = append(progs, "reboot")
	}
	return progs
}

func (f files) checkPrograms(progs []string) (map[string]string, error) {
	found := map[string]string{}
	var missing []string
	for _, p := range progs {
		path, err := f.lookPath(p)
		if err != nil {
			missing = append(missing, p)
			continue
		}
		found[p] = path
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: %s not found in /usr/sbin, /usr/bin, /sbin or /bin: install the packages that provide them (initramfs-tools; grub2-common on PCs) and try again",
			ErrMissingProg, strings.Join(missing, ", "))
	}
	return found, nil
}

func checkSpace(h Host, path string, need int64, what string) error {
	free, err := h.FreeSpace(path)
	if err != nil {
		return fmt.Errorf("free space of %s: %w", path, err)
	}
	if int64(free) < need {
		return fmt.Errorf("%w on %s: %d MiB free, %d MiB needed for %s: free some space and try again",
			errNoSpace, path, free>>20, (need+1<<20-1)>>20, what)
	}
	return nil
}

// checkChecksums verifies HOME_DIR/checksums.md5 when present.
func (f files) checkChecksums(ctx context.Context, home string, log *Log) error {
	data, err := f.read(filepath.Join(home, "checksums.md5"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read checksums.md5: %w", err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	n := 0
	for sc.Scan() {
		sum, name, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok {
			continue
		}
		name = strings.TrimPrefix(strings.TrimSpace(name), "*")
		if err := f.md5Matches(ctx, filepath.Join(home, name), sum); err != nil {
			return err
		}
		n++
	}
	log.Info("checksums.md5: %d files match", n)
	return nil
}

func (f files) md5Matches(ctx context.Context, path, want string) error {
	fh, err := os.Open(f.p(path))
	if err != nil {
		return fmt.Errorf("%w: %s listed in checksums.md5: %w: copy the migration environment again", ErrChecksum, path, err)
	}
	defer fh.Close()
	h := md5.New()
	if _, err := io.Copy(h, iox.ContextReader(ctx, fh)); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, want) {
		return fmt.Errorf("%w: %s has MD5 %s, checksums.md5 says %s: the file was damaged in transfer, copy the migration environment again", ErrChecksum, path, got, want)
	}
	return nil
}
