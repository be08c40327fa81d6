package balena

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// DefaultAPIURL is balenaCloud's API.
const DefaultAPIURL = "https://api.balena-cloud.com"

// DefaultTimeout bounds one HTTP request or one CLI run.
const DefaultTimeout = 30 * time.Second

// Options configure an implementation of Cloud. The zero value means the
// defaults: balenaCloud, the token in ~/.balena/token, DefaultRetry.
type Options struct {
	// APIURL is the balena API's base URL (api adapter only).
	APIURL string
	// Token is the API key or session token. Empty: read TokenFile.
	Token string
	// TokenFile is read when Token is empty; default ~/.balena/token.
	TokenFile string
	// Retry says how often and how patiently transient failures are retried.
	Retry RetryPolicy
	// Timeout bounds one HTTP request (api) or one CLI run (cli).
	Timeout time.Duration
	// HTTPClient replaces the api adapter's HTTP client (its Timeout is
	// then left alone).
	HTTPClient *http.Client
	// CLIPath is the balena CLI binary for the cli adapter; default
	// "balena" looked up on PATH.
	CLIPath string
	// Log receives debug lines (never tokens or keys). The zero value
	// logs nothing.
	Log zerolog.Logger
}

// WithDefaults returns o with every unset field at its default. The token
// is not read here; see ResolveToken.
func (o Options) WithDefaults() Options {
	if o.APIURL == "" {
		o.APIURL = DefaultAPIURL
	}
	o.APIURL = strings.TrimRight(o.APIURL, "/")
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.CLIPath == "" {
		o.CLIPath = "balena"
	}
	o.Retry = o.Retry.WithDefaults()
	return o
}

// ErrNoToken is returned by ResolveToken when no token was given and none
// could be read; the message names the file it looked at.
var ErrNoToken = errors.New("no balena token")

// ResolveToken returns the token from o.Token, else from o.TokenFile, else
// from ~/.balena/token (surrounding white space removed). The error names
// the place it looked and never holds the token.
func ResolveToken(o Options) (string, error) {
	if t := strings.TrimSpace(o.Token); t != "" {
		return t, nil
	}
	path := o.TokenFile
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("%w: none given with --balena-token / MIG_BALENA_TOKEN "+
				"and the home directory for ~/.balena/token is unknown: %w", ErrNoToken, err)
		}
		path = filepath.Join(home, ".balena", "token")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%w: none given with --balena-token / MIG_BALENA_TOKEN "+
			"and %s could not be read (run balena login or give a token): %w", ErrNoToken, path, err)
	}
	t := strings.TrimSpace(string(data))
	if t == "" {
		return "", fmt.Errorf("%w: none given with --balena-token / MIG_BALENA_TOKEN "+
			"and %s is empty", ErrNoToken, path)
	}
	return t, nil
}
