// Command benchtool is the Go half of scripts/bench-transfer: "serve" runs a
// loopback sshd with a device user until its stdin closes, "upload" times
// one upload.Run against it.
package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/remote"
	"github.com/fleetmig/balena-migrate/internal/fleet/remote/upload"
	"github.com/fleetmig/balena-migrate/internal/testenv/sshtest"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: benchtool serve DIR | benchtool upload DIR SRC REMOTE_DIR")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2])
	case "upload":
		if len(os.Args) != 5 {
			err = fmt.Errorf("upload needs DIR SRC REMOTE_DIR")
			break
		}
		err = timedUpload(os.Args[2], os.Args[3], os.Args[4])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtool:", err)
		os.Exit(1)
	}
}

// serve starts sshd and a user, writes DIR/ssh_config (for OpenSSH) and
// DIR/bench.env (for upload), prints "ready", and tears everything down
// when stdin closes or a signal arrives.
func serve(dir string) error {
	srv, err := sshtest.Start(sshtest.Config{})
	if err != nil {
		return err
	}
	defer srv.Close()
	l, err := srv.AddLogin(dir, sshtest.UserConfig{})
	if err != nil {
		return err
	}
	u, key, kh := l.User, l.Key, l.KnownHosts
	files := map[string]string{
		filepath.Join(dir, "ssh_config"): fmt.Sprintf("Host device\n HostName %s\n Port %d\n User %s\n IdentityFile %s\n IdentitiesOnly yes\n UserKnownHostsFile %s\n StrictHostKeyChecking yes\n BatchMode yes\n",
			srv.Host, srv.Port, u.Name, key, kh),
		filepath.Join(dir, "bench.env"): fmt.Sprintf("%s\n%d\n%s\n%s\n%s\n%s\n", srv.Host, srv.Port, u.Name, key, kh, u.Home),
	}
	for p, data := range files {
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			return err
		}
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	eof := make(chan struct{})
	go func() {
		bufio.NewReader(os.Stdin).ReadString(0)
		close(eof)
	}()
	select {
	case <-sig:
	case <-eof:
	}
	return srv.Close()
}

// timedUpload logs in with the serve settings, uploads SRC to REMOTE_DIR and
// prints the stats; the timing includes the login.
func timedUpload(dir, src, remoteDir string) error {
	env, err := os.ReadFile(filepath.Join(dir, "bench.env"))
	if err != nil {
		return err
	}
	f := strings.Split(string(env), "\n")
	port, _ := strconv.Atoi(f[1])
	opts := remote.Options{Host: f[0], Port: port, User: f[2], KeyFiles: []string{f[3]}, KnownHosts: f[4],
		HostKeyPolicy: remote.Strict, NoAgent: true}
	ctx := context.Background()
	start := time.Now()
	c, err := remote.Dial(ctx, opts)
	if err != nil {
		return err
	}
	dialled := time.Since(start)
	defer c.Close()
	s, err := upload.NewSource(src)
	if err != nil {
		return err
	}
	st, err := upload.Run(ctx, c, s, remoteDir, upload.Options{})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "benchtool: %s in %.3fs (login %.3fs): %+v\n", remoteDir, time.Since(start).Seconds(), dialled.Seconds(), st)
	return nil
}
