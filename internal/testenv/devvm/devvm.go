// Package devvm boots device VMs: a Debian machine from a cached disk
// (built from Debian's archive by scripts/test-setup.d/60-device-vm, and
// for ARM by scripts/e2e-setup.d/arm-device-vm) under qemu with TCG — a PC,
// qemu's arm64 virt machine with UEFI, or a Raspberry Pi 3 (raspi3b) — its
// serial console recorded to a file, and qemu's user-mode network with the
// guest's SSH port forwarded to a port on the host's loopback. The guest
// reaches the host's loopback at HostAddr. A VM survives its own reboots
// (a PC or arm64 machine in one qemu process from first boot to the
// flashed system; a Pi in one qemu per boot, started from its SD card) and
// dies with the process that started it.
package devvm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultCache is where the setup scripts cache images.
const DefaultCache = "/var/cache/balena-migrate-test"

// SetupScript builds the disks, relative to the repository root.
const SetupScript = "scripts/test-setup.d/60-device-vm"

// HostAddr is the host as the guest sees it on qemu's user-mode network:
// connections to it reach the host's 127.0.0.1.
const HostAddr = "10.0.2.2"

// ErrNoImage marks a device disk the setup script has not built (yet).
var ErrNoImage = errors.New("no cached device VM disk")

// Image is one cached device disk with its logins.
type Image struct {
	Disk     string // raw disk image; boot a copy (CopyDisk), never this file
	Key      string // private key root logs in with
	Password string // file holding the password of User
	User     string // non-root user with sudo
	UEFI     bool   // boots with UEFI firmware (OVMF, AAVMF) from a GPT disk
	Board    Board  // the machine it boots on
}

// OVMF firmware (Debian's ovmf package): code read-only, variables per VM.
const (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// Cache returns the cache directory (BALENA_MIGRATE_TEST_CACHE overrides).
func Cache() string {
	if c := os.Getenv("BALENA_MIGRATE_TEST_CACHE"); c != "" {
		return c
	}
	return DefaultCache
}

// RepoRoot finds the repository root above the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("devvm: no go.mod above the working directory")
		}
		dir = parent
	}
}

// ImageDir is where the current setup script puts its output: named after
// the script's hash, so an edited script never finds a stale disk.
func ImageDir(repo string) (string, error) {
	script, err := os.ReadFile(filepath.Join(repo, SetupScript))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(script)
	return filepath.Join(Cache(), "devvm-"+hex.EncodeToString(sum[:])[:16]), nil
}

// FindBIOS returns the BIOS/MBR device disk built by the current script.
func FindBIOS(repo string) (Image, error) { return find(repo, "bios.img", false) }

// FindUEFI returns the UEFI/GPT device disk built by the current script.
func FindUEFI(repo string) (Image, error) { return find(repo, "uefi.img", true) }

func find(repo, disk string, uefi bool) (Image, error) {
	dir, err := ImageDir(repo)
	if err != nil {
		return Image{}, err
	}
	img := Image{Disk: filepath.Join(dir, disk), Key: filepath.Join(dir, "id_ed25519"),
		Password: filepath.Join(dir, "password"), User: "migrate", UEFI: uefi}
	for _, p := range []string{img.Disk, img.Key, img.Password} {
		if _, err := os.Stat(p); err != nil {
			return img, fmt.Errorf("%w: %s: run %s (scripts/test does)", ErrNoImage, p, SetupScript)
		}
	}
	return img, nil
}

// CopyDisk copies a cached disk to dst, keeping it sparse.
func CopyDisk(ctx context.Context, src, dst string) error {
	out, err := exec.CommandContext(ctx, "cp", "--sparse=always", src, dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("copy %s: %w: %s", src, err, out)
	}
	return nil
}

// Config describes one VM.
type Config struct {
	Name    string   // for messages
	Disks   []string // raw disks, virtio, the first one boots; the SD card of a Pi
	Console string   // file receiving the serial console (appended to)
	Memory  int      // MiB; 1024 when 0 (a Pi 3 has 1024, always)
	Board   Board    // the machine: a PC when zero
	// UEFIVars, when set, boots with UEFI firmware (OVMF on a PC, AAVMF on
	// the arm64 machine) instead of the PC BIOS, keeping the firmware's
	// variables (boot entries, BootNext) in this file, made from the
	// firmware's template when missing.
	UEFIVars string
}

// Machine is a running VM.
type Machine struct {
	cfg     Config
	SSHPort int // host loopback port forwarded to the guest's port 22
	log     *os.File
	done    chan struct{}
	err     error // qemu's exit, valid once done is closed
	started time.Time

	mu      sync.Mutex
	cmd     *exec.Cmd // the qemu of this boot
	stopped bool
	boots   int // qemu starts: more than one on a Pi, whose firmware is this package
}

// Start boots the VM in the background.
func Start(cfg Config) (*Machine, error) {
	if cfg.Memory == 0 {
		cfg.Memory = 1024
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	log, err := os.OpenFile(cfg.Console, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("console log: %w", err)
	}
	m := &Machine{cfg: cfg, SSHPort: port, log: log, done: make(chan struct{}), started: time.Now()}
	cmd, err := m.launch()
	if err != nil {
		log.Close()
		return nil, err
	}
	go m.supervise(cmd)
	return m, nil
}

// launch starts qemu for the next boot.
func (m *Machine) launch() (*exec.Cmd, error) {
	prog, args, err := m.qemuArgs()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(prog, args...)
	cmd.Stdout, cmd.Stderr = m.log, m.log
	// The VM must not outlive a test or script that is killed or interrupted.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return nil, fmt.Errorf("%s: stopped", m.cfg.Name)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s for %s: %w", prog, m.cfg.Name, err)
	}
	m.cmd = cmd
	m.boots++
	return cmd, nil
}

// supervise waits for qemu. A PC or the arm64 machine reboots inside its
// qemu; a Pi's qemu exits at every reset, and the next boot starts from
// the SD card again, as the Pi's firmware starts it.
func (m *Machine) supervise(cmd *exec.Cmd) {
	for {
		from := len(m.Console())
		err := cmd.Wait()
		next := m.cfg.Board == BoardPi3 && m.restarting(from)
		if next {
			cmd, err = m.launch()
			next = err == nil
		}
		if !next {
			m.err = err
			m.log.Close()
			close(m.done)
			return
		}
	}
}

// qemuArgs is the qemu program and arguments of the next boot.
func (m *Machine) qemuArgs() (string, []string, error) {
	cfg := m.cfg
	net := fmt.Sprintf("user,id=net0,hostfwd=tcp:127.0.0.1:%d-:22", m.SSHPort)
	common := []string{"-accel", "tcg", "-m", strconv.Itoa(cfg.Memory), "-display", "none", "-monitor", "none"}
	switch cfg.Board {
	case BoardARM64:
		args, err := m.arm64Args(common, net)
		return "qemu-system-aarch64", args, err
	case BoardPi3:
		args, err := m.pi3Args(common, net)
		return "qemu-system-aarch64", args, err
	}
	args := append(common, "-smp", "1", "-serial", "stdio", "-netdev", net, "-device", "virtio-net-pci,netdev=net0")
	if cfg.UEFIVars != "" {
		if _, err := os.Stat(cfg.UEFIVars); err != nil {
			if err := copyFile(OVMFVars, cfg.UEFIVars); err != nil {
				return "", nil, fmt.Errorf("OVMF variables (package ovmf): %w", err)
			}
		}
		args = append(args, "-drive", "if=pflash,format=raw,readonly=on,file="+OVMFCode,
			"-drive", "if=pflash,format=raw,file="+cfg.UEFIVars)
	}
	for _, d := range cfg.Disks {
		args = append(args, "-drive", "file="+d+",format=raw,if=virtio")
	}
	return "qemu-system-x86_64", args, nil
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o600)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Name is the VM's name.
func (m *Machine) Name() string { return m.cfg.Name }

// Done is closed when qemu has exited.
func (m *Machine) Done() <-chan struct{} { return m.done }

// Stop kills qemu (a power cut) and waits for it; idempotent.
func (m *Machine) Stop() {
	m.mu.Lock()
	m.stopped = true
	cmd := m.cmd
	m.mu.Unlock()
	select {
	case <-m.done:
		return
	default:
	}
	cmd.Process.Kill()
	<-m.done
}

// WaitExit waits until qemu exits (the guest powered off) or ctx ends.
func (m *Machine) WaitExit(ctx context.Context) error {
	select {
	case <-m.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s did not power off: %w", m.cfg.Name, ctx.Err())
	}
}

// Console returns everything the serial console printed so far.
func (m *Machine) Console() string {
	b, _ := os.ReadFile(m.cfg.Console)
	return string(b)
}

// WaitConsole waits until the console holds want after byte offset from,
// and returns the offset just past it. It fails early when qemu exits.
func (m *Machine) WaitConsole(ctx context.Context, from int, want string) (int, error) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		exited := false
		select {
		case <-m.done:
			exited = true
		default:
		}
		c := m.Console()
		if from <= len(c) {
			if i := strings.Index(c[from:], want); i >= 0 {
				return from + i + len(want), nil
			}
		}
		if exited {
			return len(c), fmt.Errorf("%s: qemu exited (%v) before the console showed %q", m.cfg.Name, m.err, want)
		}
		select {
		case <-ctx.Done():
			return len(c), fmt.Errorf("%s: console did not show %q: %w", m.cfg.Name, want, ctx.Err())
		case <-tick.C:
		}
	}
}
