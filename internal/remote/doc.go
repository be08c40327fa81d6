// Package remote is the SSH session with a device: connecting and
// authenticating (password, key files, ssh-agent, keyboard-interactive),
// checking host keys against known_hosts (strict, accept-new, off), the
// OpenSSH options operators pass in MIG_SSH_OPTS, and running commands
// (also as root through sudo, and detached for reboot). Copying the
// migration environment is package remote/upload, which uses only the
// session's exported methods.
//
// It uses golang.org/x/crypto/ssh; no ssh or sshpass binaries. Every
// failure it returns wraps one class (errors.Is): ErrDNS, ErrRefused,
// ErrUnreachable, ErrAuth, ErrHostKey, ErrTimeout or ErrTransfer.
// Passwords never appear in errors or log lines.
//
// A device session is:
//
//	c, err := remote.Dial(ctx, opts)
//	defer c.Close()
//	stats, err := upload.Run(ctx, c, src, "migrate", upload.Options{})
//	code, err := c.RunAsRoot(ctx, "migrate", []string{"./balena-migrate", "--reboot", "10"}, log, log)
package remote
