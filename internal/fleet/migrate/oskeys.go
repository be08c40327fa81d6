package migrate

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
)

// readOSKeys reads the public keys of MIG_OS_SSH_KEY (one per line, as in
// an authorized_keys or .pub file); each must parse as OpenSSH writes it.
func readOSKeys(path string) ([]string, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("MIG_OS_SSH_KEY: %w: give the public key file (.pub) of a key the workers log in with", err)
	}
	var keys []string
	for i, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(l)); err != nil {
			return nil, fmt.Errorf("MIG_OS_SSH_KEY %s line %d is not an OpenSSH public key (%v): give the .pub file, never the private key", path, i+1, err)
		}
		keys = append(keys, l)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("MIG_OS_SSH_KEY %s holds no public key", path)
	}
	return keys, nil
}

// withOSKeys adds keys to config.json's os.sshKeys, keeping what the
// fleet's config has there and everything else as it is.
func withOSKeys(config []byte, keys []string) ([]byte, error) {
	if len(keys) == 0 {
		return config, nil
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(config, &cfg); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	osCfg := map[string]json.RawMessage{}
	if raw, ok := cfg["os"]; ok {
		if err := json.Unmarshal(raw, &osCfg); err != nil {
			return nil, fmt.Errorf("config.json os: %w", err)
		}
	}
	var have []string
	if raw, ok := osCfg["sshKeys"]; ok {
		if err := json.Unmarshal(raw, &have); err != nil {
			return nil, fmt.Errorf("config.json os.sshKeys: %w", err)
		}
	}
	for _, k := range keys {
		if !slices.Contains(have, k) {
			have = append(have, k)
		}
	}
	var err error
	if osCfg["sshKeys"], err = json.Marshal(have); err != nil {
		return nil, err
	}
	if cfg["os"], err = json.Marshal(osCfg); err != nil {
		return nil, err
	}
	return json.Marshal(cfg)
}
