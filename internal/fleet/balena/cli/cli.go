// Package cli owns the balena-CLI adapter of balena.Cloud: it runs the
// `balena` binary (no shell in between) with the commands the original
// scripts used — whoami, device register, config generate, device --json —
// reads their output formats and classifies their failures with the balena
// package's error classes. The CLI keeps its own login (balena login, or
// the token file in BALENARC_DATA_DIRECTORY, which reaches it through the
// worker's environment); an API other than balenaCloud's reaches it as
// BALENARC_BALENA_URL.
package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/rs/zerolog"
)

// Client runs the balena CLI. It is safe for concurrent use.
type Client struct {
	bin     string
	env     []string // added to the CLI's environment
	timeout time.Duration
	retry   balena.RetryPolicy
	log     zerolog.Logger
}

var _ balena.Cloud = (*Client)(nil)

// New finds the CLI (opts.CLIPath, default "balena" on PATH). It runs
// nothing; Whoami is the cheap check that the CLI is logged in.
func New(opts balena.Options) (*Client, error) {
	opts = opts.WithDefaults()
	bin, err := exec.LookPath(opts.CLIPath)
	if err != nil {
		return nil, fmt.Errorf("balena CLI %q not found (install it, or use --cloud api): %w", opts.CLIPath, err)
	}
	return &Client{bin: bin, env: cliEnv(opts), timeout: opts.Timeout, retry: opts.Retry, log: opts.Log}, nil
}

// cliEnv tells the CLI what the worker was told: the balena host of the
// API URL (the CLI wants "balena.example.com" for https://api.balena.example.com)
// and the directory of a token file named "token".
func cliEnv(o balena.Options) []string {
	env := []string{"BALENARC_NO_SENTRY=1", "NO_COLOR=1"}
	if u, err := url.Parse(o.APIURL); err == nil && o.APIURL != balena.DefaultAPIURL && u.Hostname() != "" {
		env = append(env, "BALENARC_BALENA_URL="+strings.TrimPrefix(u.Hostname(), "api."))
	}
	if o.TokenFile != "" && filepath.Base(o.TokenFile) == "token" {
		env = append(env, "BALENARC_DATA_DIRECTORY="+filepath.Dir(o.TokenFile))
	}
	return env
}

// run runs the CLI with args, retrying transient failures, and returns
// its standard output.
func (c *Client) run(ctx context.Context, op string, args ...string) ([]byte, error) {
	var out []byte
	err := c.retry.Do(ctx, func(ctx context.Context) error {
		var err error
		out, err = c.once(ctx, op, args)
		return err
	})
	return out, err
}

func (c *Client) once(ctx context.Context, op string, args []string) ([]byte, error) {
	runCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cmd := exec.CommandContext(runCtx, c.bin, args...)
	cmd.Env = append(cmd.Environ(), c.env...)
	// Its own process group, so a timeout also ends what the CLI started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	c.log.Debug().Str("op", op).Strs("args", args).Dur("took", time.Since(start)).Err(err).Msg("balena CLI")
	if err == nil {
		return stdout.Bytes(), nil
	}
	switch {
	case ctx.Err() != nil:
		return nil, &balena.Error{Op: op, Err: ctx.Err()}
	case runCtx.Err() != nil:
		return nil, &balena.Error{Op: op, Class: balena.ErrTransient,
			Msg: fmt.Sprintf("balena CLI did not finish within %v", c.timeout), Err: runCtx.Err()}
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return nil, &balena.Error{Op: op, Msg: "cannot run the balena CLI " + c.bin, Err: err}
	}
	text := strings.TrimSpace(stderr.String() + "\n" + stdout.String())
	return nil, &balena.Error{Op: op, Class: classify(text), Msg: firstLines(text, 3)}
}

// Output fragments of the CLI's error messages, by class. The CLI prints
// SDK errors as "<ErrorName>: <message>" or "Request error: <body>".
var (
	unauthorizedText = []string{"login required", "unauthorized", "balenaexpiredtoken",
		"session token has expired", "not logged in"}
	conflictText  = []string{"must be unique", "already exists", "conflict"}
	transientText = []string{"etimedout", "econnrefused", "econnreset", "enotfound", "eai_again",
		"socket hang up", "check your connection", "network", "too many requests",
		"service unavailable", "bad gateway", "gateway timeout", "internal server error", "timed out"}
	// The SDK's BalenaInvalidDeviceType says "Invalid device type: <slug>"
	// for a type balena does not know ("Incompatible device type" for one
	// of another architecture stays ErrInvalid).
	notFoundText = []string{"not found", "invalid device type:"}
)

// classify maps the CLI's error output to an error class; anything not
// recognised is ErrInvalid.
func classify(output string) error {
	s := strings.ToLower(output)
	for _, c := range []struct {
		class error
		texts []string
	}{
		{balena.ErrUnauthorized, unauthorizedText},
		{balena.ErrConflict, conflictText},
		{balena.ErrNotFound, notFoundText}, // before transient: "DeviceNotFound" holds "enotfound"
		{balena.ErrTransient, transientText},
	} {
		for _, t := range c.texts {
			if strings.Contains(s, t) {
				return c.class
			}
		}
	}
	return balena.ErrInvalid
}

// firstLines keeps the first n non-empty lines of s, joined by " / ".
func firstLines(s string, n int) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && len(keep) < n {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, " / ")
}
