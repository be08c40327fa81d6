package api

import (
	"context"
	"slices"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
)

// deviceTypeQuery is what `balena device-type list --all` asks for: every
// type with its architecture and the names balena takes for it.
const deviceTypeQuery = "$select=slug,name" +
	"&$expand=is_of__cpu_architecture($select=slug),device_type_alias($select=is_referenced_by__alias)"

// DeviceTypes lists the device types balena knows, in one request.
func (c *Client) DeviceTypes(ctx context.Context) ([]balena.DeviceType, error) {
	var reply struct {
		D []struct {
			Slug string `json:"slug"`
			Name string `json:"name"`
			Arch []struct {
				Slug string `json:"slug"`
			} `json:"is_of__cpu_architecture"`
			Aliases []struct {
				Alias string `json:"is_referenced_by__alias"`
			} `json:"device_type_alias"`
		} `json:"d"`
	}
	err := c.call(ctx, request{op: "list device types", method: "GET", path: "/v7/device_type",
		query: deviceTypeQuery, want: 200, out: &reply})
	if err != nil {
		return nil, err
	}
	out := make([]balena.DeviceType, 0, len(reply.D))
	for _, d := range reply.D {
		t := balena.DeviceType{Slug: d.Slug, Name: d.Name}
		if len(d.Arch) > 0 {
			t.Arch = d.Arch[0].Slug
		}
		for _, a := range d.Aliases {
			if a.Alias != d.Slug && !slices.Contains(t.Aliases, a.Alias) {
				t.Aliases = append(t.Aliases, a.Alias)
			}
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, &balena.Error{Op: "list device types", Class: balena.ErrInvalid,
			Msg: "balena lists no device types (a rejected token sees none: check it)"}
	}
	return out, nil
}
