// Package remote is the SSH session with a device: connecting (directly or
// through ProxyJump hosts) and authenticating (password, key files,
// ssh-agent, keyboard-interactive), checking every host key against
// known_hosts (strict, accept-new, off), the operator's OpenSSH client
// config and the options passed in MIG_SSH_OPTS, and running commands (also
// as root through sudo, and detached for reboot). A Dialer holds what one
// worker process shares between dials: parsed known_hosts and ssh_config
// files and the login cap per jump host. Copying the
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
//	var d remote.Dialer // one per process
//	c, err := d.Dial(ctx, opts)
//	defer c.Close()
//	stats, err := upload.Run(ctx, c, src, "migrate", upload.Options{})
//	code, err := c.RunAsRoot(ctx, "migrate", []string{"./balena-migrate", "--reboot", "10"}, log, log)
package remote
