package remote

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Authentication method names, as Client.AuthMethod reports them.
const (
	AuthPublicKey           = "publickey"
	AuthPassword            = "password"
	AuthKeyboardInteractive = "keyboard-interactive"
)

// authState remembers the last method x/crypto/ssh asked for; methods are
// tried in order and nothing is asked after one succeeds, so once the login
// succeeded it is the method that worked.
type authState struct {
	last  atomic.Value // string
	agent net.Conn
}

// methods builds the login methods: public keys (key files, then the
// agent), keyboard-interactive answering every prompt with the password,
// then password.
func (o Options) authMethods(st *authState) ([]ssh.AuthMethod, error) {
	signers, err := o.keySigners()
	if err != nil {
		return nil, err
	}
	var agentSigners func() ([]ssh.Signer, error)
	if sock := o.agentSocket(); sock != "" {
		conn, err := net.Dial("unix", sock)
		if err != nil {
			o.Log.Warn().Err(err).Msg("ssh-agent not reachable, not used")
		} else {
			st.agent = conn
			agentSigners = agent.NewClient(conn).Signers
		}
	}
	var methods []ssh.AuthMethod
	if len(signers) > 0 || agentSigners != nil {
		methods = append(methods, ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			st.last.Store(AuthPublicKey)
			all := signers
			if agentSigners != nil {
				if more, err := agentSigners(); err == nil {
					all = append(all[:len(all):len(all)], more...)
				}
			}
			return all, nil
		}))
	}
	if o.Password != "" {
		pw := o.Password
		methods = append(methods,
			ssh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
				st.last.Store(AuthKeyboardInteractive)
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = pw
				}
				return answers, nil
			}),
			ssh.PasswordCallback(func() (string, error) {
				st.last.Store(AuthPassword)
				return pw, nil
			}))
	}
	if len(methods) == 0 {
		return nil, withClass(ErrAuth, errors.New("no password, no usable key file and no ssh-agent: nothing to log in with"))
	}
	return methods, nil
}

func (o Options) agentSocket() string {
	if o.NoAgent {
		return ""
	}
	if o.AgentSocket != "" {
		return o.AgentSocket
	}
	return os.Getenv("SSH_AUTH_SOCK")
}

// keySigners loads the key files. Explicit files must be readable and
// parse; the default files are used when present. Encrypted keys are
// skipped with a warning (there is no passphrase to ask for).
func (o Options) keySigners() ([]ssh.Signer, error) {
	files, explicit := o.KeyFiles, true
	if len(files) == 0 {
		explicit = false
		if home, err := os.UserHomeDir(); err == nil {
			for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
				files = append(files, filepath.Join(home, ".ssh", n))
			}
		}
	}
	var signers []ssh.Signer
	for _, f := range files {
		path, err := expandHome(f)
		if err != nil {
			return nil, withClass(ErrAuth, err)
		}
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) && !explicit {
			continue
		}
		if err != nil {
			return nil, withClass(ErrAuth, fmt.Errorf("key file: %w", err))
		}
		s, err := ssh.ParsePrivateKey(data)
		var pme *ssh.PassphraseMissingError
		if errors.As(err, &pme) {
			o.Log.Warn().Str("key", path).Msg("key file is passphrase-protected, skipped (load it into ssh-agent instead)")
			continue
		}
		if err != nil {
			return nil, withClass(ErrAuth, fmt.Errorf("key file %s: %w", path, err))
		}
		signers = append(signers, s)
	}
	return signers, nil
}
