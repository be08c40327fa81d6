package migrate

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// osKeyFile writes a fresh public key file and returns its path.
func osKeyFile(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "lifeline.pub")
	if err := os.WriteFile(p, ssh.MarshalAuthorizedKey(sp), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOSKeys(t *testing.T) {
	pub := osKeyFile(t)
	keys, err := readOSKeys(pub)
	if err != nil || len(keys) != 1 || !strings.HasPrefix(keys[0], "ssh-ed25519 ") {
		t.Fatalf("%v %v", keys, err)
	}
	// The fleet's own keys and other os settings stay.
	in := `{"uuid":"u","os":{"sshKeys":["ssh-rsa AAAA fleet"],"network":{"connectivity":{"interval":"300"}}}}`
	out, err := withOSKeys([]byte(in), append(keys, "ssh-rsa AAAA fleet"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		UUID string `json:"uuid"`
		OS   struct {
			SSHKeys []string       `json:"sshKeys"`
			Network map[string]any `json:"network"`
		} `json:"os"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil || cfg.UUID != "u" || !reflect.DeepEqual(cfg.OS.SSHKeys, []string{"ssh-rsa AAAA fleet", keys[0]}) || cfg.OS.Network == nil {
		t.Fatalf("%s (%v)", out, err)
	}
	// A private key is refused without being echoed.
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(priv, "")
	privPath := filepath.Join(t.TempDir(), "id_ed25519")
	os.WriteFile(privPath, pem.EncodeToMemory(block), 0o600)
	_, err = readOSKeys(privPath)
	if err == nil || !strings.Contains(err.Error(), "is not an OpenSSH public key") || strings.Contains(err.Error(), "PRIVATE") {
		t.Fatalf("private key: %v", err)
	}
	if _, err := readOSKeys(filepath.Join(t.TempDir(), "none.pub")); err == nil {
		t.Fatal("a missing file was taken")
	}
}
