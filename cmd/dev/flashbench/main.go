// Command flashbench is the Go side of scripts/bench-flash.
//
//	flashbench gen OUT SIZE_MIB   writes a deterministic test image, prints its SHA-256
//	flashbench flash IMG.gz DEV SHA256   flashes with read-back verification, prints seconds
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	"github.com/fleetmig/balena-migrate/internal/device/flash"
)

func main() {
	var err error
	switch {
	case len(os.Args) == 4 && os.Args[1] == "gen":
		err = gen(os.Args[2], os.Args[3])
	case len(os.Args) == 5 && os.Args[1] == "flash":
		err = flashImage(os.Args[2], os.Args[3], os.Args[4])
	default:
		err = fmt.Errorf("usage: flashbench gen OUT SIZE_MIB | flashbench flash IMG.gz DEV SHA256")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "flashbench:", err)
		os.Exit(1)
	}
}

// gen writes an image shaped like a real one: per 4 MiB, 1 MiB of random
// bytes (compressed payloads), 1 MiB of text (binaries, configs) and 2 MiB of
// zeros (free space).
func gen(out, sizeMiB string) error {
	n, err := strconv.Atoi(sizeMiB)
	if err != nil || n%4 != 0 {
		return fmt.Errorf("size %q: want a multiple of 4 MiB", sizeMiB)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 4<<20)
	h := sha256.New()
	mw := io.MultiWriter(w, h)
	r := rand.New(rand.NewPCG(42, 42))
	random, text, zeros := make([]byte, 1<<20), make([]byte, 1<<20), make([]byte, 2<<20)
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	for range n / 4 {
		for i := range random {
			random[i] = byte(r.Uint32())
		}
		for i := range raw {
			raw[i] = byte(r.IntN(16)) // low entropy: text-like compressibility
		}
		base64.StdEncoding.Encode(text, raw)
		for _, b := range [][]byte{random, text, zeros} {
			if _, err := mw.Write(b); err != nil {
				return err
			}
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Println(hex.EncodeToString(h.Sum(nil)))
	return f.Close()
}

func flashImage(img, dev, sha string) error {
	in, err := os.Open(img)
	if err != nil {
		return err
	}
	defer in.Close()
	start := time.Now()
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	if _, err := flash.Image(context.Background(), dev, in, sha, flash.Options{Log: logf}); err != nil {
		return err
	}
	fmt.Printf("%.3f\n", time.Since(start).Seconds())
	return nil
}
