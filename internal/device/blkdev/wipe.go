package blkdev

import (
	"bytes"
	"fmt"
	"os"
)

// tailWipe is how much of a disk's end ClearTail zeroes: far more than a
// backup GPT (header plus entries: 17 KiB with 512-byte sectors, 20 KiB
// with 4 KiB sectors), and nothing a freshly flashed system uses.
const tailWipe = 1 << 20

// ClearTail zeroes the last MiB of the disk open as f, as far as it lies
// past end (where a flashed image ends), and syncs it. The old system's
// backup GPT lives there: left in place, a disk flashed with an MBR image
// carries both a dos and a stale gpt table, and probing becomes ambiguous.
// It reports whether a GPT header ("EFI PART") was found at the last
// 512-byte or 4 KiB sector.
func ClearTail(f *os.File, end int64) (staleGPT bool, err error) {
	size, err := Size(f)
	if err != nil {
		return false, err
	}
	from := max(size-tailWipe, end)
	if from >= size {
		return false, nil
	}
	for _, sector := range []int64{512, 4096} {
		if size-sector < from {
			continue
		}
		sig := make([]byte, 8)
		if _, err := f.ReadAt(sig, size-sector); err != nil {
			return false, fmt.Errorf("read the end of %s: %w", f.Name(), err)
		}
		staleGPT = staleGPT || bytes.Equal(sig, []byte("EFI PART"))
	}
	if _, err := f.WriteAt(make([]byte, size-from), from); err != nil {
		return staleGPT, fmt.Errorf("clear the end of %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return staleGPT, fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	return staleGPT, nil
}
