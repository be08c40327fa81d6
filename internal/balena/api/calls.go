package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fleetmig/balena-migrate/internal/balena"
)

// Query options of the SDK's calls (SPEC §8).
const (
	appSelect    = "$select=id,slug&$expand=is_for__device_type($select=slug)"
	deviceSelect = "$select=id,uuid,is_online,last_connectivity_event"
	ownerSelect  = "$select=id,uuid,belongs_to__application"
)

// provisioningKeyLife is how long the key made for one registration lives.
const provisioningKeyLife = 10 * time.Minute

type appInfo struct {
	id         int64
	slug       string
	deviceType string
}

// Whoami asks GET /actor/v1/whoami who the token belongs to.
func (c *Client) Whoami(ctx context.Context) (balena.User, error) {
	var who struct {
		ID          int64  `json:"id"`
		ActorType   string `json:"actorType"`
		ActorTypeID int64  `json:"actorTypeId"`
		Username    string `json:"username"`
		Email       string `json:"email"`
	}
	err := c.call(ctx, request{op: "check credentials", method: "GET", path: "/actor/v1/whoami",
		want: 200, out: &who})
	if err != nil {
		return balena.User{}, err
	}
	u := balena.User{ID: who.ID, Username: who.Username, Email: who.Email}
	if who.ActorType == "user" && who.ActorTypeID != 0 {
		u.ID = who.ActorTypeID
	}
	if u.ID == 0 {
		return balena.User{}, &balena.Error{Op: "check credentials", Class: balena.ErrInvalid,
			Msg: "whoami reply has no id"}
	}
	c.mu.Lock()
	c.user = &u
	c.mu.Unlock()
	return u, nil
}

func (c *Client) currentUser(ctx context.Context) (balena.User, error) {
	c.mu.Lock()
	u := c.user
	c.mu.Unlock()
	if u != nil {
		return *u, nil
	}
	return c.Whoami(ctx)
}

// app resolves an application reference: "org/name" slug, numeric id or
// bare name. Results are cached for the client's lifetime.
func (c *Client) app(ctx context.Context, ref string) (appInfo, error) {
	ref = strings.TrimSpace(ref)
	op := fmt.Sprintf("look up application %q", ref)
	if err := balena.CheckSetting("look up application", ref, balena.SettingApp); err != nil {
		return appInfo{}, err
	}
	c.mu.Lock()
	a, ok := c.apps[ref]
	c.mu.Unlock()
	if ok {
		return a, nil
	}
	req := request{op: op, method: "GET", path: "/v7/application", want: 200}
	switch {
	case isDigits(ref):
		req.path += "(" + ref + ")"
		req.query = appSelect
	case strings.Contains(ref, "/"):
		req.query = appSelect + "&" + filterEq("slug", strings.ToLower(ref))
	default:
		req.query = appSelect + "&" + filterEq("app_name", ref)
	}
	var reply struct {
		D []struct {
			ID         int64  `json:"id"`
			Slug       string `json:"slug"`
			DeviceType []struct {
				Slug string `json:"slug"`
			} `json:"is_for__device_type"`
		} `json:"d"`
	}
	req.out = &reply
	if err := c.call(ctx, req); err != nil {
		return appInfo{}, err
	}
	switch {
	case len(reply.D) == 0:
		return appInfo{}, &balena.Error{Op: op, Class: balena.ErrNotFound,
			Msg: "no such application visible to this token"}
	case len(reply.D) > 1:
		return appInfo{}, &balena.Error{Op: op, Class: balena.ErrConflict,
			Msg: fmt.Sprintf("%d applications have this name; give it as org/name", len(reply.D))}
	case len(reply.D[0].DeviceType) == 0 || reply.D[0].ID == 0:
		return appInfo{}, &balena.Error{Op: op, Class: balena.ErrInvalid,
			Msg: "reply lacks the application id or device type"}
	}
	a = appInfo{id: reply.D[0].ID, slug: reply.D[0].Slug, deviceType: reply.D[0].DeviceType[0].Slug}
	c.mu.Lock()
	c.apps[ref] = a
	c.mu.Unlock()
	return a, nil
}

func isDigits(s string) bool {
	_, err := strconv.ParseUint(s, 10, 63)
	return err == nil
}

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
	return found && d.IsOnline, err
}

// Register creates the device with a provisioning key made for it, as the
// SDK does. A UUID that is already registered in the same application is
// looked up and returned with Existing set.
func (c *Client) Register(ctx context.Context, appRef, uuid string) (balena.Device, error) {
	op := "register device " + uuid
	if err := balena.CheckUUID(op, uuid); err != nil {
		return balena.Device{}, err
	}
	user, err := c.currentUser(ctx)
	if err != nil {
		return balena.Device{}, err
	}
	app, err := c.app(ctx, appRef)
	if err != nil {
		return balena.Device{}, err
	}
	key, err := c.provisioningKey(ctx, app.id)
	if err != nil {
		return balena.Device{}, err
	}
	var created struct {
		ID   int64  `json:"id"`
		UUID string `json:"uuid"`
	}
	err = c.call(ctx, request{op: op, method: "POST", path: "/device/register", bearer: key, want: 201,
		body: map[string]any{"user": user.ID, "application": app.id, "uuid": uuid, "device_type": app.deviceType},
		out:  &created})
	if errors.Is(err, balena.ErrConflict) {
		return c.existing(ctx, op, app, uuid, err)
	}
	if err != nil {
		return balena.Device{}, err
	}
	if created.ID == 0 || created.UUID != uuid {
		return balena.Device{}, &balena.Error{Op: op, Class: balena.ErrInvalid,
			Msg: "registration reply lacks the device id or has another UUID"}
	}
	c.log.Debug().Str("uuid", uuid).Int64("device_id", created.ID).Str("app", app.slug).Msg("device registered")
	return balena.Device{ID: created.ID, UUID: uuid}, nil
}

// existing resolves a registration conflict: the UUID's device is
// returned when it belongs to app; otherwise conflict stands.
func (c *Client) existing(ctx context.Context, op string, app appInfo, uuid string, conflict error) (balena.Device, error) {
	d, found, err := c.device(ctx, uuid, ownerSelect)
	if err != nil {
		return balena.Device{}, err
	}
	if !found {
		return balena.Device{}, fmt.Errorf("%w (and the device is not visible to this token)", conflict)
	}
	if d.App == nil || d.App.ID != app.id {
		return balena.Device{}, &balena.Error{Op: op, Class: balena.ErrConflict,
			Msg: "the UUID is already registered in another application"}
	}
	c.log.Debug().Str("uuid", uuid).Int64("device_id", d.ID).Msg("device was already registered")
	return balena.Device{ID: d.ID, UUID: uuid, Existing: true}, nil
}

// provisioningKey makes a provisioning key for the application that
// expires in provisioningKeyLife.
func (c *Client) provisioningKey(ctx context.Context, appID int64) (string, error) {
	var key string
	err := c.call(ctx, request{op: "create provisioning key", method: "POST", path: "/api-key/v2/", want: 200,
		body: map[string]any{
			"actorType": "application", "actorTypeId": appID, "roles": []string{"provisioning-api-key"},
			"expiryDate":  c.now().Add(provisioningKeyLife).UTC().Format(time.RFC3339),
			"description": "balena-migrate device pre-registration",
		},
		out: &key})
	if err == nil && key == "" {
		err = &balena.Error{Op: "create provisioning key", Class: balena.ErrInvalid, Msg: "empty key in reply"}
	}
	return key, err
}

// DeviceConfig builds the device's config.json: the application's
// configuration from /download-config without its apiKey, plus a new
// device API key, the device id, UUID and registered_at.
func (c *Client) DeviceConfig(ctx context.Context, appRef, uuid, version string) ([]byte, error) {
	op := "generate config.json for " + uuid
	if err := errors.Join(balena.CheckUUID(op, uuid), balena.CheckSetting(op, version, balena.SettingVersion)); err != nil {
		return nil, err
	}
	app, err := c.app(ctx, appRef)
	if err != nil {
		return nil, err
	}
	d, found, err := c.device(ctx, uuid, ownerSelect)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, &balena.Error{Op: op, Class: balena.ErrNotFound, Msg: "the device is not registered"}
	}
	if d.App == nil || d.App.ID != app.id {
		return nil, &balena.Error{Op: op, Class: balena.ErrConflict, Msg: "the device belongs to another application"}
	}
	var cfg map[string]json.RawMessage
	err = c.call(ctx, request{op: op, method: "POST", path: "/download-config", want: 200, out: &cfg,
		body: map[string]any{"appId": app.id, "version": version, "network": "ethernet",
			"appUpdatePollInterval": 10, "deviceType": app.deviceType}})
	if err != nil {
		return nil, err
	}
	var key string
	err = c.call(ctx, request{op: "create device key for " + uuid, method: "POST",
		path: fmt.Sprintf("/api-key/device/%d/device-key", d.ID), body: map[string]any{}, want: 200, out: &key})
	if err != nil {
		return nil, err
	}
	return assembleConfig(cfg, key, d.ID, uuid, c.now())
}

// assembleConfig turns the application config into the device's.
func assembleConfig(cfg map[string]json.RawMessage, deviceKey string, id int64, uuid string, now time.Time) ([]byte, error) {
	if cfg == nil || deviceKey == "" {
		return nil, &balena.Error{Op: "generate config.json for " + uuid, Class: balena.ErrInvalid,
			Msg: "empty configuration or device key in reply"}
	}
	delete(cfg, "apiKey")
	for k, v := range map[string]any{"deviceApiKey": deviceKey, "deviceId": id, "uuid": uuid,
		"registered_at": now.Unix()} {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		cfg[k] = b
	}
	return json.Marshal(cfg)
}
