// Package remote owns every conversation with a device over SSH: connecting
// and authenticating (password, key files, ssh-agent, keyboard-interactive),
// checking host keys against known_hosts (strict, accept-new, off), the
// OpenSSH options operators pass in MIG_SSH_OPTS, running commands (also as
// root through sudo, and detached for reboot), and copying a migration
// environment onto the device (SFTP, or tar over exec when the device has no
// SFTP) with skipping of files already there and resuming of interrupted ones.
//
// It uses golang.org/x/crypto/ssh and github.com/pkg/sftp; no ssh or sshpass
// binaries. Every failure it returns carries one class (see Class): dns,
// refused, unreachable, auth, host_key, timeout or transfer. Passwords never
// appear in errors or log lines.
//
// A device session is:
//
//	c, err := remote.Dial(ctx, opts)
//	defer c.Close()
//	stats, err := c.Upload(ctx, src, "migrate", remote.UploadOptions{})
//	code, err := c.RunAsRoot(ctx, "migrate", []string{"./balena-migrate", "--reboot", "10"}, log, log)
package remote
