// Command wanbench measures push against pull over a simulated wide-area
// network (scripts/bench-wan runs it): every device sits behind its own
// link (latency and rate, internal/testenv/netsim) and every SSH
// connection from the worker also crosses the host's shared uplink. In
// push mode the image goes to each device over SSH, through the uplink;
// in pull mode each device fetches it from a mirror near the devices
// (the fake API serving images), over its own link only. The migrate
// pipeline is the real one, in process, against real sshd device users
// and the stage-1 stand-in.
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/fleet/balena/api"
	"github.com/fleetmig/balena-migrate/internal/fleet/config"
	"github.com/fleetmig/balena-migrate/internal/fleet/migrate"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/fleet/worker"
	"github.com/fleetmig/balena-migrate/internal/testenv/fakebalena"
	"github.com/fleetmig/balena-migrate/internal/testenv/netsim"
	"github.com/fleetmig/balena-migrate/internal/testenv/sshtest"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/ssh"
)

type options struct {
	devices    int
	imageMB    int
	rtt        time.Duration
	deviceMbit float64
	uplinkMbit float64
	repo       string
}

func main() {
	var o options
	flag.IntVar(&o.devices, "devices", 32, "devices migrated at once")
	flag.IntVar(&o.imageMB, "image-mb", 20, "image size in MB (a real one is about 400: the ratio is what counts)")
	flag.DurationVar(&o.rtt, "rtt", 50*time.Millisecond, "round-trip time to each device")
	flag.Float64Var(&o.deviceMbit, "device-mbit", 20, "each device's link")
	flag.Float64Var(&o.uplinkMbit, "uplink-mbit", 100, "the worker host's uplink, shared by every SSH connection")
	flag.StringVar(&o.repo, "repo", ".", "repository root")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "wanbench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	push, err := once(o, false)
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	pull, err := once(o, true)
	if err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	perHour := func(d time.Duration) float64 { return float64(o.devices) / d.Hours() }
	fmt.Printf("wan devices=%d image_mb=%d rtt=%v device_mbit=%g uplink_mbit=%g push_s=%.1f pull_s=%.1f push_units_per_hour=%.0f pull_units_per_hour=%.0f ratio=%.2f\n",
		o.devices, o.imageMB, o.rtt, o.deviceMbit, o.uplinkMbit, push.Seconds(), pull.Seconds(), perHour(push), perHour(pull), push.Seconds()/pull.Seconds())
	return nil
}

// once migrates o.devices devices in one mode and returns the wall time.
func once(o options, pull bool) (time.Duration, error) {
	work, err := os.MkdirTemp("", "wanbench-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(work)
	srv, err := sshtest.Start(sshtest.Config{})
	if err != nil {
		return 0, err
	}
	defer srv.Close()
	api0 := fakebalena.Start(fakebalena.Config{})
	defer api0.Close()
	api0.AddUser("op", "bench-token")
	api0.AddApp("org/fleet", "genericx86-64-ext")

	image := make([]byte, o.imageMB<<20)
	rand.Read(image)
	sum := sha256.Sum256(image)
	const name = "balena-genericx86-64-ext-2.113.0.img.gz"
	env := filepath.Join(work, "env")
	standin, err := os.ReadFile(filepath.Join(o.repo, "internal", "testenv", "fleetsim", "balena-migrate-standin"))
	if err != nil {
		return 0, err
	}
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	must(os.MkdirAll(env, 0o755))
	must(os.WriteFile(filepath.Join(env, "balena-migrate"), standin, 0o755))
	must(os.WriteFile(filepath.Join(env, "balena-migrate.conf"), []byte("IMAGE_NAME="+name+"\nNO_FLASH=FALSE\n"), 0o644))
	if pull {
		api0.AddImage(name, image)
		must(os.WriteFile(filepath.Join(env, name+".sha256"), []byte(hex.EncodeToString(sum[:])+"  "+name+"\n"), 0o644))
	} else {
		must(os.WriteFile(filepath.Join(env, name), image, 0o644))
	}
	key := filepath.Join(work, "id")
	signer, err := sshtest.GenerateKey(key)
	if err != nil {
		return 0, err
	}
	db, err := spool.Open(work)
	if err != nil {
		return 0, err
	}
	uplink := netsim.Mbit(o.uplinkMbit)
	mirror := api0.URL()[len("http://"):]
	for i := 0; i < o.devices; i++ {
		u, err := srv.AddUser(sshtest.UserConfig{Keys: []ssh.PublicKey{signer.PublicKey()},
			Sudo: []string{"/home/" + sshtest.UserPrefix + "*/migrate/balena-migrate"}})
		if err != nil {
			return 0, err
		}
		link := netsim.Mbit(o.deviceMbit)
		sshPath, err := netsim.Start(net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port)), o.rtt/2, uplink, link)
		if err != nil {
			return 0, err
		}
		defer sshPath.Close()
		un, _ := unit.New(fmt.Sprintf("dev-%02d", i), time.Now())
		un.Set(config.SSHHost, "127.0.0.1")
		un.Set(config.SSHPort, strconv.Itoa(sshPath.Addr().Port))
		un.Set(config.SSHUser, u.Name)
		if pull {
			// The mirror is near the devices: only the device's link.
			mirrorPath, err := netsim.Start(mirror, o.rtt/2, link)
			if err != nil {
				return 0, err
			}
			defer mirrorPath.Close()
			un.Set(config.ImageURL, fmt.Sprintf("http://127.0.0.1:%d/_fake/images", mirrorPath.Addr().Port))
		}
		if _, err := db.Add(un); err != nil {
			return 0, err
		}
	}
	s, err := config.Resolve(config.Migrate, config.Layer{Source: "wanbench", Values: map[string]string{
		config.App: "org/fleet", config.BalenaVer: "2.113.0", config.CfgDir: env, config.SSHKey: key,
		config.KnownHosts: filepath.Join(work, "known_hosts"), config.TxTimeout: "30m", config.ExecTimeout: "5m",
	}})
	if err != nil {
		return 0, err
	}
	cloud, err := api.New(balena.Options{APIURL: api0.URL(), Token: "bench-token"})
	if err != nil {
		return 0, err
	}
	log := zerolog.Nop()
	m := &migrate.Migrator{Cloud: cloud, Settings: s, Log: log, Now: time.Now}
	loop := &worker.Loop{DB: db, Input: spool.Units, Name: "wanbench", Jobs: o.devices, Once: true, DueOf: m.DueOf, Log: log, Handle: m.Handle}
	start := time.Now()
	if err := loop.Run(context.Background(), context.Background()); err != nil {
		return 0, err
	}
	took := time.Since(start)
	done, _ := os.ReadDir(db.Path(spool.Process))
	if len(done) != o.devices {
		failed, _ := os.ReadDir(db.Path(spool.Fail))
		return 0, fmt.Errorf("%d of %d units migrated (%d failed; see %s)", len(done), o.devices, len(failed), db.Path(spool.Fail))
	}
	mode := "push"
	if pull {
		mode = "pull"
	}
	fmt.Printf("%s: %d devices in %.1f s (image bytes from the mirror: %d)\n", mode, o.devices, took.Seconds(), api0.ImageBytes())
	return took, nil
}
