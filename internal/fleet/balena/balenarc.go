package balena

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// CLIConfig finds the balena API and credentials where the balena CLI
// looks for them, so an operator of a self-hosted balena (openBalena) who
// has the CLI set up needs to tell the workers nothing more:
//
//   - the API: BALENARC_BALENA_URL, else balenaUrl in ~/.balenarc.yml —
//     both name the balena host ("balena.example.com"), whose API is
//     https://api.<host>; else balenaCloud;
//   - the token: BALENA_API_KEY, else the token file in
//     BALENARC_DATA_DIRECTORY, else ~/.balena/token.
//
// Explicit settings (MIG_BALENA_API, MIG_BALENA_TOKEN) beat all of these.
type CLIConfig struct {
	Getenv func(string) string // os.Getenv in programs
	Home   string              // the user's home directory
}

// APIURL is the API URL and where it came from, for messages.
func (c CLIConfig) APIURL() (url, source string, err error) {
	if host := strings.TrimSpace(c.Getenv("BALENARC_BALENA_URL")); host != "" {
		return apiOf(host), "BALENARC_BALENA_URL", nil
	}
	rc := filepath.Join(c.Home, ".balenarc.yml")
	data, err := os.ReadFile(rc)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return DefaultAPIURL, "default", nil
	case err != nil:
		return "", "", fmt.Errorf("%s: %w", rc, err)
	}
	var doc struct {
		BalenaURL string `yaml:"balenaUrl"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return "", "", fmt.Errorf("%s is not valid YAML: %w", rc, err)
	}
	if strings.TrimSpace(doc.BalenaURL) == "" {
		return DefaultAPIURL, "default", nil
	}
	return apiOf(doc.BalenaURL), "balenaUrl in " + rc, nil
}

// apiOf turns a balena host name into its API URL, as the CLI does. A full
// URL is taken as it is.
func apiOf(host string) string {
	host = strings.TrimRight(strings.TrimSpace(host), "/")
	if strings.HasPrefix(host, "https://") || strings.HasPrefix(host, "http://") {
		return host
	}
	return "https://api." + host
}

// Credentials fills o.Token or o.TokenFile the way the CLI finds its
// token, unless o already names one.
func (c CLIConfig) Credentials(o Options) Options {
	if o.Token != "" || o.TokenFile != "" {
		return o
	}
	if key := strings.TrimSpace(c.Getenv("BALENA_API_KEY")); key != "" {
		o.Token = key
		return o
	}
	if dir := strings.TrimSpace(c.Getenv("BALENARC_DATA_DIRECTORY")); dir != "" {
		o.TokenFile = filepath.Join(dir, "token")
	}
	return o
}
