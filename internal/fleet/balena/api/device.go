package api

import (
	"context"
	"errors"
	"fmt"
	"strings"

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
	st := balena.DeviceStatus{ID: d.ID, Heartbeat: d.Heartbeat, VPN: d.IsOnline, OSVersion: d.OSVersion,
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

// SetTag adds the tag (POST /v7/device_tag, by the device's UUID) and,
// when the device has one of that key already (409), changes its value
// (PATCH /v7/device_tag filtered by device and key).
func (c *Client) SetTag(ctx context.Context, uuid, key, value string) error {
	op := fmt.Sprintf("tag device %s with %s", uuid, key)
	if err := balena.CheckUUID(op, uuid); err != nil {
		return err
	}
	if strings.TrimSpace(key) == "" {
		return &balena.Error{Op: op, Class: balena.ErrInvalid, Msg: "empty tag key"}
	}
	d, found, err := c.device(ctx, uuid, "$select=id")
	if err != nil {
		return err
	}
	if !found {
		return &balena.Error{Op: op, Class: balena.ErrNotFound, Msg: "no device " + uuid}
	}
	err = c.call(ctx, request{op: op, method: "POST", path: "/v7/device_tag",
		body: map[string]any{"device": d.ID, "tag_key": key, "value": value}, want: 201})
	if !errors.Is(err, balena.ErrConflict) {
		return err
	}
	return c.call(ctx, request{op: op, method: "PATCH", path: "/v7/device_tag",
		query: fmt.Sprintf("$filter=device%%20eq%%20%d%%20and%%20tag_key%%20eq%%20%s", d.ID, literal(key)),
		body:  map[string]any{"value": value}, want: 200})
}

// SetProgress sets the device's provisioning_state and
// provisioning_progress (the dashboard's progress bar of a device that
// is configuring) with one PATCH by UUID.
func (c *Client) SetProgress(ctx context.Context, uuid, state string, percent int) error {
	op := "show migration progress of " + uuid
	if err := balena.CheckUUID(op, uuid); err != nil {
		return err
	}
	return c.call(ctx, request{op: op, method: "PATCH", path: "/v7/device", query: filterEq("uuid", uuid),
		body: map[string]any{"provisioning_state": state, "provisioning_progress": min(max(percent, 0), 100)}, want: 200})
}
