package api

import (
	"context"
	"fmt"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
)

// CheckFleet looks the fleet up, makes the provisioning key registrations
// will use (proof that the token may register devices into it), compares
// the version with the balenaOS releases balena lists for the fleet's type
// and fetches the config.json template for that type and version. All but
// the release list are kept for the registrations: a worker's start-up
// check costs one request more than its first unit would have.
func (c *Client) CheckFleet(ctx context.Context, ref, version string) (balena.Fleet, error) {
	op := fmt.Sprintf("check fleet %q", strings.TrimSpace(ref))
	if err := balena.CheckFleetSettings(op, ref, version); err != nil {
		return balena.Fleet{}, err
	}
	app, err := c.app(ctx, ref)
	if err != nil {
		return balena.Fleet{}, err
	}
	f := balena.Fleet{ID: app.id, Slug: app.slug, DeviceType: app.deviceType}
	if _, err := c.provisioningKey(ctx, app.id); err != nil {
		return f, fmt.Errorf("%s: the token may not register devices into it (making a provisioning key failed): %w", op, err)
	}
	if version == "" {
		return f, nil
	}
	listed, err := c.osReleases(ctx, app.deviceType)
	if err != nil {
		return f, err
	}
	for _, v := range listed {
		if balena.SameOSVersion(version, v) {
			f.OSVersionChecked = true
			break
		}
	}
	if len(listed) > 0 && !f.OSVersionChecked {
		if len(listed) > 5 {
			listed = listed[:5]
		}
		return f, &balena.Error{Op: op, Class: balena.ErrNotFound, Msg: fmt.Sprintf(
			"balena has no balenaOS %s for %s (its latest: %s); give one it has (%s)",
			version, app.deviceType, strings.Join(listed, ", "), balena.SettingVersion)}
	}
	if _, err := c.template(ctx, templateID{appID: app.id, deviceType: app.deviceType, version: version}); err != nil {
		return f, err
	}
	return f, nil
}

// osReleases lists the balenaOS releases balena has for a device type
// (its host app's successful releases), newest first; none on openBalena.
func (c *Client) osReleases(ctx context.Context, deviceType string) ([]string, error) {
	var reply struct {
		D []struct {
			Version string `json:"raw_version"`
		} `json:"d"`
	}
	// The any() lambdas must reach balena unencoded; only the literal is.
	q := "$select=raw_version&$orderby=created_at%20desc&$filter=status%20eq%20'success'%20and%20" +
		"belongs_to__application/any(a:a/is_host%20eq%20true%20and%20a/is_for__device_type/any(d:d/slug%20eq%20" +
		literal(deviceType) + "))"
	err := c.call(ctx, request{op: "list balenaOS releases for " + deviceType, method: "GET", path: "/v7/release",
		query: q, want: 200, out: &reply})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range reply.D {
		out = append(out, r.Version)
	}
	return out, nil
}
