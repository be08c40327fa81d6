// Package cloud owns the choice of balena.Cloud implementation by name
// (--cloud / MIG_CLOUD): "api" (the default) for native HTTPS, "cli" for
// the balena CLI on PATH.
package cloud

import (
	"errors"
	"fmt"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/fleetmig/balena-migrate/internal/fleet/balena/api"
	"github.com/fleetmig/balena-migrate/internal/fleet/balena/cli"
)

// Kinds of implementation.
const (
	KindAPI = "api"
	KindCLI = "cli"
)

// ErrUnknownKind is returned by New for a kind that is neither api nor cli.
var ErrUnknownKind = errors.New("unknown balena cloud kind")

// New returns the implementation named kind ("" means api) configured by
// opts. It makes no network call or CLI run; call Whoami to check the
// credentials.
func New(kind string, opts balena.Options) (balena.Cloud, error) {
	switch strings.ToLower(strings.TrimSpace(kind)) {
	case "", KindAPI:
		c, err := api.New(opts)
		if err != nil {
			return nil, err
		}
		return c, nil
	case KindCLI:
		c, err := cli.New(opts)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	return nil, fmt.Errorf("%w %q (--cloud / MIG_CLOUD): use %s or %s", ErrUnknownKind, kind, KindAPI, KindCLI)
}
