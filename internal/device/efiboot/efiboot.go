// Package efiboot writes UEFI boot entries into the firmware's variables
// through efivarfs, as efibootmgr does: a load option (Boot####) that starts
// an EFI loader on a given partition, put first in BootOrder. After stage 2
// flashes a disk the old entries point at an EFI system partition that is
// gone; the firmware would only find balenaOS through the removable-media
// fallback path, which not every firmware has.
package efiboot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"

	"golang.org/x/sys/unix"
)

// GlobalGUID is the vendor GUID of the boot manager's variables.
const GlobalGUID = "8be4df61-93ca-11d2-aa0d-00e098032b8c"

// DefaultDir is where efivarfs is mounted.
const DefaultDir = "/sys/firmware/efi/efivars"

// fsImmutable is FS_IMMUTABLE_FL of FS_IOC_GETFLAGS (linux/fs.h).
const fsImmutable = 0x10

// Variable attributes: kept across reboots, seen by the boot manager and
// by the running system.
const attrNVBSRT = 0x7

// loadOptionActive marks a load option the boot manager may start.
const loadOptionActive = 0x1

// Partition says where an EFI loader lives, in the terms of a Hard Drive
// device path: the partition's number, start and size in 512-byte sectors,
// and its identity (GPT: the unique partition GUID as stored in the table;
// MBR: the disk signature).
type Partition struct {
	Number      int
	Start, Size int64 // sectors
	GPT         bool
	Signature   [16]byte
}

// LoadOption encodes an active EFI_LOAD_OPTION named desc that starts the
// loader (a path on the partition, "\EFI\BOOT\BOOTX64.EFI") on p.
func LoadOption(desc string, p Partition, loader string) []byte {
	le := binary.LittleEndian
	var path bytes.Buffer
	// Media / Hard Drive: number, start, size, signature, format, signature type.
	hd := make([]byte, 42)
	hd[0], hd[1] = 4, 1
	le.PutUint16(hd[2:], 42)
	le.PutUint32(hd[4:], uint32(p.Number))
	le.PutUint64(hd[8:], uint64(p.Start))
	le.PutUint64(hd[16:], uint64(p.Size))
	copy(hd[24:40], p.Signature[:])
	hd[40], hd[41] = 1, 1 // MBR, 32-bit signature
	if p.GPT {
		hd[40], hd[41] = 2, 2 // GPT, GUID
	}
	path.Write(hd)
	// Media / File Path, the loader's path in UCS-2 with its NUL.
	name := ucs2(strings.ReplaceAll(loader, "/", `\`))
	fp := make([]byte, 4)
	fp[0], fp[1] = 4, 4
	le.PutUint16(fp[2:], uint16(4+len(name)))
	path.Write(fp)
	path.Write(name)
	// End of the device path.
	path.Write([]byte{0x7f, 0xff, 4, 0})

	var out bytes.Buffer
	binary.Write(&out, le, uint32(loadOptionActive))
	binary.Write(&out, le, uint16(path.Len()))
	out.Write(ucs2(desc))
	out.Write(path.Bytes())
	return out.Bytes()
}

func ucs2(s string) []byte {
	u := append(utf16.Encode([]rune(s)), 0)
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// Vars are the firmware's variables as efivarfs shows them in Dir.
type Vars struct{ Dir string }

func (v Vars) path(name string) string { return filepath.Join(v.Dir, name+"-"+GlobalGUID) }

// read returns a variable's data (without the attributes efivarfs puts first).
func (v Vars) read(name string) ([]byte, error) {
	b, err := os.ReadFile(v.path(name))
	if err != nil {
		return nil, err
	}
	if len(b) < 4 {
		return nil, fmt.Errorf("efi variable %s: %d bytes", name, len(b))
	}
	return b[4:], nil
}

// write sets a variable in one write, as efivarfs wants it, after lifting
// the immutable flag efivarfs sets on the variables that exist.
func (v Vars) write(name string, data []byte) error {
	p := v.path(name)
	if f, err := os.Open(p); err == nil {
		if flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS); err == nil && flags&fsImmutable != 0 {
			unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags&^fsImmutable))
		}
		f.Close()
	}
	buf := make([]byte, 4, 4+len(data))
	binary.LittleEndian.PutUint32(buf, attrNVBSRT)
	buf = append(buf, data...)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("efi variable %s: %w", name, err)
	}
	_, err = f.Write(buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("efi variable %s: %w", name, err)
	}
	return nil
}

// BootOrder reads the boot manager's order of load options.
func (v Vars) BootOrder() ([]uint16, error) {
	b, err := v.read("BootOrder")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]uint16, len(b)/2)
	for i := range out {
		out[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return out, nil
}

// BootCurrent is the load option the firmware started this boot with.
func (v Vars) BootCurrent() (uint16, error) {
	b, err := v.read("BootCurrent")
	if err != nil {
		return 0, err
	}
	if len(b) < 2 {
		return 0, fmt.Errorf("BootCurrent: %d bytes", len(b))
	}
	return binary.LittleEndian.Uint16(b), nil
}

// Entries lists the load options Boot####.
func (v Vars) Entries() (map[uint16][]byte, error) {
	ents, err := os.ReadDir(v.Dir)
	if err != nil {
		return nil, err
	}
	out := map[uint16][]byte{}
	for _, e := range ents {
		hex, ok := strings.CutSuffix(e.Name(), "-"+GlobalGUID)
		if !ok || len(hex) != 8 || !strings.HasPrefix(hex, "Boot") {
			continue
		}
		n, err := strconv.ParseUint(hex[4:], 16, 16)
		if err != nil {
			continue
		}
		if out[uint16(n)], err = v.read(hex); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// AddFirst makes opt a load option (reusing one with the same bytes) and
// puts it first in BootOrder. It returns the option's number.
func (v Vars) AddFirst(opt []byte) (uint16, error) {
	ents, err := v.Entries()
	if err != nil {
		return 0, err
	}
	num, found := uint16(0), false
	for n, b := range ents {
		if bytes.Equal(b, opt) && (!found || n < num) {
			num, found = n, true
		}
	}
	for ; !found; num++ {
		if _, used := ents[num]; !used {
			if err := v.write(fmt.Sprintf("Boot%04X", num), opt); err != nil {
				return 0, err
			}
			break
		}
		if num == 0xFFFF {
			return 0, errors.New("no free Boot#### variable")
		}
	}
	order, err := v.BootOrder()
	if err != nil {
		return 0, err
	}
	order = append([]uint16{num}, slices.DeleteFunc(order, func(n uint16) bool { return n == num })...)
	data := make([]byte, 2*len(order))
	for i, n := range order {
		binary.LittleEndian.PutUint16(data[2*i:], n)
	}
	return num, v.write("BootOrder", data)
}

// Describe renders a load option as efibootmgr prints it, for the log:
// its description and a Hard Drive / File path.
func Describe(opt []byte) string {
	if len(opt) < 6 {
		return "?"
	}
	le := binary.LittleEndian
	plen := int(le.Uint16(opt[4:]))
	i := 6
	var desc []uint16
	for ; i+1 < len(opt); i += 2 {
		c := le.Uint16(opt[i:])
		if c == 0 {
			i += 2
			break
		}
		desc = append(desc, c)
	}
	s := string(utf16.Decode(desc))
	path := opt[i:min(len(opt), i+plen)]
	var nodes []string
	for len(path) >= 4 {
		typ, sub, n := path[0], path[1], int(le.Uint16(path[2:]))
		if n < 4 || n > len(path) {
			break
		}
		node := path[:n]
		switch {
		case typ == 4 && sub == 1 && n == 42:
			sig := fmt.Sprintf("%08x", le.Uint32(node[24:]))
			kind := "MBR"
			if node[40] == 2 {
				kind, sig = "GPT", guidString(node[24:40])
			}
			nodes = append(nodes, fmt.Sprintf("HD(%d,%s,%s,0x%x,0x%x)", le.Uint32(node[4:]), kind, sig, le.Uint64(node[8:]), le.Uint64(node[16:])))
		case typ == 4 && sub == 4:
			var u []uint16
			for j := 4; j+1 < n; j += 2 {
				if c := le.Uint16(node[j:]); c != 0 {
					u = append(u, c)
				}
			}
			nodes = append(nodes, "File("+string(utf16.Decode(u))+")")
		case typ == 0x7f:
		default:
			nodes = append(nodes, fmt.Sprintf("Node(%d,%d)", typ, sub))
		}
		path = path[n:]
	}
	return s + "\t" + strings.Join(nodes, "/")
}

// guidString renders a GUID stored as EFI keeps it (the first three
// fields little-endian).
func guidString(b []byte) string {
	le := binary.LittleEndian
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", le.Uint32(b), le.Uint16(b[4:]), le.Uint16(b[6:]), b[8:10], b[10:16])
}

// SecureBoot reads whether the firmware enforces Secure Boot: SecureBoot
// is 1 and the platform is not in Setup Mode (no platform key enrolled,
// where nothing is checked). known is false when efivarfs shows neither
// variable (not mounted, or firmware without Secure Boot).
func (v Vars) SecureBoot() (enforced, known bool, err error) {
	sb, err := v.read("SecureBoot")
	if errors.Is(err, os.ErrNotExist) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	setup, err := v.read("SetupMode")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, false, err
	}
	inSetup := len(setup) > 0 && setup[0] == 1
	return len(sb) > 0 && sb[0] == 1 && !inSetup, true, nil
}

// HardDrive reads the partition of a load option's Hard Drive node (the
// EFI system partition the loader is on); ok is false when it has none.
func HardDrive(opt []byte) (p Partition, ok bool) {
	if len(opt) < 6 {
		return p, false
	}
	le := binary.LittleEndian
	plen := int(le.Uint16(opt[4:]))
	i := 6
	for ; i+1 < len(opt); i += 2 {
		if le.Uint16(opt[i:]) == 0 {
			i += 2
			break
		}
	}
	path := opt[i:min(len(opt), i+plen)]
	for len(path) >= 4 {
		typ, sub, n := path[0], path[1], int(le.Uint16(path[2:]))
		if n < 4 || n > len(path) {
			return p, false
		}
		if typ == 4 && sub == 1 && n == 42 {
			p.Number = int(le.Uint32(path[4:]))
			p.Start, p.Size = int64(le.Uint64(path[8:])), int64(le.Uint64(path[16:]))
			copy(p.Signature[:], path[24:40])
			p.GPT = path[40] == 2
			return p, true
		}
		path = path[n:]
	}
	return p, false
}

// Entry reads the load option Boot#### numbered n.
func (v Vars) Entry(n uint16) ([]byte, error) { return v.read(fmt.Sprintf("Boot%04X", n)) }
