package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/fleet/balena/api"
	"github.com/fleetmig/balena-migrate/internal/testenv/fakebalena"
)

func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fake-balena-api")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

const runnerToken = "sekr1t-runner-token"

// TestRunner starts the built runner, uses it through the api adapter and
// stops it with SIGTERM.
func TestRunner(t *testing.T) {
	bin := build(t)
	urlFile := filepath.Join(t.TempDir(), "url")
	cmd := exec.Command(bin, "--app", "ops/fleet-one:raspberrypi3", "--token", runnerToken,
		"--url-file", urlFile, "--log-requests")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "http://127.0.0.1:") {
		t.Fatalf("first line %q is not the URL", lines.Text())
	}
	url := lines.Text()
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "app ops/fleet-one id=") {
		t.Fatalf("second line %q", lines.Text())
	}
	if b, err := os.ReadFile(urlFile); err != nil || strings.TrimSpace(string(b)) != url {
		t.Fatalf("url file %q (%v), want %s", b, err, url)
	}
	c, err := api.New(balena.Options{APIURL: url, Token: runnerToken})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	uuid := balena.NewUUID()
	d, err := c.Register(ctx, balena.Registration{Fleet: "ops/fleet-one", UUID: uuid})
	if err != nil {
		t.Fatal(err)
	}
	data, err := c.DeviceConfig(ctx, d, "2.26.0")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct{ APIEndpoint, DeviceAPIKey string }
	if err := json.Unmarshal(data, &cfg); err != nil || cfg.APIEndpoint != url {
		t.Fatalf("config.json apiEndpoint %q (%v), want %s", cfg.APIEndpoint, err, url)
	}
	if on, err := c.IsOnline(ctx, uuid); on || err != nil {
		t.Fatalf("IsOnline = %v, %v before the device reported", on, err)
	}
	if err := fakebalena.ReportState(ctx, cfg.APIEndpoint, uuid, cfg.DeviceAPIKey); err != nil {
		t.Fatal(err)
	}
	if on, err := c.IsOnline(ctx, uuid); !on || err != nil {
		t.Fatalf("IsOnline = %v, %v after the device reported", on, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
		if log := stderr.String(); !strings.Contains(log, "path=/device/register") ||
			!strings.Contains(log, "status=201") || strings.Contains(log, runnerToken) {
			t.Errorf("request log lacks the registration or shows the token:\n%s", log)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still running 5 s after SIGTERM")
	}
}

func TestRunnerBadFlags(t *testing.T) {
	bin := build(t)
	tests := [][]string{
		{"--app", "no-slash:raspberrypi3"},
		{"--app", "ops/x"},
		{"--fault-rate", "2"},
		{"--fault-status", "200"},
		{"--api-endpoint", "10.0.2.2:8080"},
		{"--listen", "256.0.0.1:0"},
		{"--no-such-flag"},
	}
	for _, args := range tests {
		out, err := exec.Command(bin, args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.HasPrefix(string(out), "fake-balena-api: ") {
			t.Errorf("%v: err %v, output %q; want exit 2 with a message", args, err, out)
		}
	}
}
