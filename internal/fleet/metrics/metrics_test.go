package metrics_test

import (
	"testing"

	"github.com/fleetmig/balena-migrate/internal/fleet/metrics"
)

func TestRoute(t *testing.T) {
	for path, want := range map[string]string{
		"/v7/device(123)":                 "PATCH /v7/device(<id>)",
		"/api-key/device/42/device-key":   "PATCH /api-key/device/<id>/device-key",
		"/v7/device":                      "PATCH /v7/device",
		"/api-key/v2/":                    "PATCH /api-key/v2/",
		"/v7/device(uuid='0a1b')":         "PATCH /v7/device(<id>)",
		"/device/register":                "PATCH /device/register",
		"/v7/application(1)/owns__device": "PATCH /v7/application(<id>)/owns__device",
	} {
		if got := metrics.Route("PATCH", path); got != want {
			t.Errorf("%s: %s, want %s", path, got, want)
		}
	}
}
