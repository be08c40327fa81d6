package remote

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// A host known by an ECDSA key must be asked for that key type, or the
// server's preferred ed25519 key would look like a changed key.
func TestKnownAlgorithmsFollowKnownHosts(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, file, "# comment\n"+knownhosts.Line([]string{"[10.1.2.3]:2222"}, pub)+"\n")
	h := &hostKeys{kh: &knownHostsFile{path: file}, policy: Strict, host: "10.1.2.3:2222"}
	if got := h.knownAlgorithms(); !reflect.DeepEqual(got, []string{ssh.KeyAlgoECDSA256}) {
		t.Errorf("known host: %q", got)
	}
	for _, other := range []*hostKeys{
		{kh: &knownHostsFile{path: file}, policy: Strict, host: "10.1.2.3:22"},                        // another port
		{kh: &knownHostsFile{path: file}, policy: Off, host: "10.1.2.3:2222"},                         // policy off
		{kh: &knownHostsFile{path: filepath.Join(t.TempDir(), "none")}, policy: Strict, host: "x:22"}, // no file
	} {
		if got := other.knownAlgorithms(); got != nil {
			t.Errorf("%+v: %q, want nil (library defaults)", other, got)
		}
	}
}
