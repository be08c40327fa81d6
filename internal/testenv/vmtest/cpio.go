package vmtest

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

// Entry is one file of an initramfs.
type Entry struct {
	Mode  uint32 // full st_mode: type bits and permissions
	Data  []byte // file content, or the target of a symlink
	Major uint32 // device numbers for character/block nodes
	Minor uint32
}

// Mode bits for Entry.Mode.
const (
	ModeDir     = 0o040000
	ModeFile    = 0o100000
	ModeSymlink = 0o120000
	ModeChar    = 0o020000
)

// Archive is an initramfs being assembled: path (without leading /) → entry.
// Parent directories are added when written.
type Archive map[string]Entry

// AddFile adds a regular file with perm.
func (a Archive) AddFile(name string, data []byte, perm uint32) {
	a[strings.TrimPrefix(name, "/")] = Entry{Mode: ModeFile | perm, Data: data}
}

// AddHostFile adds the host file src at name, keeping its permissions.
func (a Archive) AddHostFile(name, src string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	a.AddFile(name, data, uint32(st.Mode().Perm()))
	return nil
}

// WriteGzip writes the archive as a gzip-compressed newc cpio, the format the
// kernel unpacks as initramfs.
func (a Archive) WriteGzip(w io.Writer) error {
	zw := gzip.NewWriter(w)
	bw := bufio.NewWriter(zw)
	names := a.withParents()
	for i, name := range names {
		if err := writeEntry(bw, uint32(i+1), name, a[name]); err != nil {
			return err
		}
	}
	if err := writeEntry(bw, 0, "TRAILER!!!", Entry{}); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return zw.Close()
}

func (a Archive) withParents() []string {
	for name := range a {
		for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
			if _, ok := a[d]; !ok {
				a[d] = Entry{Mode: ModeDir | 0o755}
			}
		}
	}
	names := make([]string, 0, len(a))
	for n := range a {
		names = append(names, n)
	}
	sort.Strings(names) // parents sort before their children
	return names
}

func writeEntry(w *bufio.Writer, ino uint32, name string, e Entry) error {
	nlink := uint32(1)
	if e.Mode&0o170000 == ModeDir {
		nlink = 2
	}
	_, err := fmt.Fprintf(w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, e.Mode, 0, 0, nlink, 0, len(e.Data), 0, 0, e.Major, e.Minor, len(name)+1, 0)
	if err != nil {
		return err
	}
	w.WriteString(name)
	w.WriteByte(0)
	pad(w, 110+len(name)+1)
	w.Write(e.Data)
	pad(w, len(e.Data))
	return nil
}

func pad(w *bufio.Writer, n int) {
	for ; n%4 != 0; n++ {
		w.WriteByte(0)
	}
}
