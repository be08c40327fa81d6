package api

import (
	"context"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
)

// Query options of the device lookups.
const (
	deviceSelect = "$select=id,uuid,is_online,last_connectivity_event"
	ownerSelect  = "$select=id,uuid,belongs_to__application"
)

type deviceRow struct {
	ID       int64  `json:"id"`
	UUID     string `json:"uuid"`
	IsOnline bool   `json:"is_online"`
	App      *struct {
		ID int64 `json:"__id"`
	} `json:"belongs_to__application"`
}

// device looks a device up by UUID with the given $select; found is false
// when balena has no such device.
func (c *Client) device(ctx context.Context, uuid, sel string) (row deviceRow, found bool, err error) {
	var reply struct {
		D []deviceRow `json:"d"`
	}
	err = c.call(ctx, request{op: "look up device " + uuid, method: "GET", path: "/v7/device",
		query: sel + "&" + filterEq("uuid", uuid), want: 200, out: &reply})
	if err != nil || len(reply.D) == 0 {
		return deviceRow{}, false, err
	}
	return reply.D[0], true, nil
}

// IsOnline asks for the device's is_online. A device balena does not know
// is not online (false, nil).
func (c *Client) IsOnline(ctx context.Context, uuid string) (bool, error) {
	if err := balena.CheckUUID("check device online", uuid); err != nil {
		return false, err
	}
	d, found, err := c.device(ctx, uuid, deviceSelect)
	if err == nil && !found {
		return false, &balena.Error{Op: "check device online", Class: balena.ErrNotFound, Msg: "no device " + uuid}
	}
	return d.IsOnline, err
}
