package api

import (
	"context"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
)

// Query options of the device lookups.
const (
	statusSelect = "$select=id,uuid,is_online,api_heartbeat_state,os_version,supervisor_version" +
		"&$expand=is_of__device_type($select=slug)"
	ownerSelect = "$select=id,uuid,belongs_to__application"
)

type deviceRow struct {
	ID                int64  `json:"id"`
	UUID              string `json:"uuid"`
	IsOnline          bool   `json:"is_online"`
	Heartbeat         string `json:"api_heartbeat_state"`
	OSVersion         string `json:"os_version"`
	SupervisorVersion string `json:"supervisor_version"`
	App               *struct {
		ID int64 `json:"__id"`
	} `json:"belongs_to__application"`
	DeviceType []struct {
		Slug string `json:"slug"`
	} `json:"is_of__device_type"`
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

// Status asks for the device's is_online, heartbeat, OS and supervisor
// versions and type, in one request.
func (c *Client) Status(ctx context.Context, uuid string) (balena.DeviceStatus, error) {
	if err := balena.CheckUUID("check device status", uuid); err != nil {
		return balena.DeviceStatus{}, err
	}
	d, found, err := c.device(ctx, uuid, statusSelect)
	if err != nil {
		return balena.DeviceStatus{}, err
	}
	if !found {
		return balena.DeviceStatus{}, &balena.Error{Op: "check device status", Class: balena.ErrNotFound, Msg: "no device " + uuid}
	}
	st := balena.DeviceStatus{Heartbeat: d.Heartbeat, VPN: d.IsOnline, OSVersion: d.OSVersion,
		SupervisorVersion: d.SupervisorVersion}
	if len(d.DeviceType) > 0 {
		st.DeviceType = d.DeviceType[0].Slug
	}
	return st, nil
}

// IsOnline is Status(…).Online(): online by VPN or by heartbeat.
func (c *Client) IsOnline(ctx context.Context, uuid string) (bool, error) {
	st, err := c.Status(ctx, uuid)
	return st.Online(), err
}
