package cliapp

import (
	"context"
	"errors"

	"github.com/fleetmig/balena-migrate/internal/balena"
	"github.com/fleetmig/balena-migrate/internal/balena/cloud"
	"github.com/fleetmig/balena-migrate/internal/config"
	"github.com/fleetmig/balena-migrate/internal/usage"
	"github.com/rs/zerolog"
)

// Cloud builds the balena client the settings describe and checks its
// credentials with one cheap call. Any failure is a usage error (exit 2):
// a worker must not touch a unit with credentials that do not work.
func Cloud(ctx context.Context, s *config.Settings, log zerolog.Logger) (balena.Cloud, error) {
	c, err := cloud.New(s.Lower(config.Cloud), balena.Options{
		APIURL: s.String(config.BalenaAPI),
		Token:  s.String(config.BalenaToken),
		Log:    log,
	})
	if err != nil {
		return nil, usage.Errorf("balena (%s): %v", s.Lower(config.Cloud), err)
	}
	user, err := c.Whoami(ctx)
	switch {
	case errors.Is(err, balena.ErrUnauthorized):
		return nil, usage.Errorf("balena rejected the token (--balena-token / MIG_BALENA_TOKEN / ~/.balena/token): log in again or give a valid API key: %v", err)
	case err != nil:
		return nil, usage.Errorf("cannot check the balena credentials at %s: %v", s.String(config.BalenaAPI), err)
	}
	log.Info().Str("user", user.Username).Int64("user_id", user.ID).Msg("balena credentials accepted")
	return c, nil
}
