package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
)

// A provisioning key lives keyLife; one with less than keyMargin left is
// not used for another registration. Short, so that no key that could
// register devices in the fleet outlives a run by much.
const (
	keyLife   = 10 * time.Minute
	keyMargin = 2 * time.Minute
)

type provisioningKey struct {
	key     string
	expires time.Time
}

// Register registers the device with a provisioning key shared by all
// registrations of the fleet while it is fresh, and a device API key made
// here and handed to balena with the registration, as the SDK does: one
// round trip, whose reply carries the device id. Naming the device is a
// second; each tag one more. A UUID that is already registered in the
// same fleet is looked up and returned with Existing set.
func (c *Client) Register(ctx context.Context, r balena.Registration) (balena.Device, error) {
	op := "register device " + r.UUID
	if err := r.Check(op); err != nil {
		return balena.Device{}, err
	}
	user, err := c.currentUser(ctx)
	if err != nil {
		return balena.Device{}, err
	}
	app, err := c.app(ctx, r.Fleet)
	if err != nil {
		return balena.Device{}, err
	}
	dev := balena.Device{UUID: r.UUID, Fleet: r.Fleet, DeviceType: r.DeviceType}
	if dev.DeviceType == "" {
		dev.DeviceType = app.deviceType
	}
	deviceKey := newDeviceKey()
	var created struct {
		ID     int64  `json:"id"`
		UUID   string `json:"uuid"`
		APIKey string `json:"api_key"`
	}
	for try := 1; ; try++ {
		var key string
		if key, err = c.provisioningKey(ctx, app.id); err != nil {
			return balena.Device{}, err
		}
		err = c.call(ctx, request{op: op, method: "POST", path: "/device/register", bearer: key, want: 201,
			body: map[string]any{"user": user.ID, "application": app.id, "uuid": r.UUID,
				"device_type": dev.DeviceType, "api_key": deviceKey},
			out: &created})
		if !errors.Is(err, balena.ErrUnauthorized) || try > 1 {
			break
		}
		// The shared key was revoked or expired early: make a new one.
		c.dropKey(app.id, key)
	}
	switch {
	case errors.Is(err, balena.ErrConflict):
		if dev, err = c.existing(ctx, op, app, dev, err); err != nil {
			return balena.Device{}, err
		}
	case err != nil:
		return balena.Device{}, err
	case created.ID == 0 || created.UUID != r.UUID || (created.APIKey != "" && created.APIKey != deviceKey):
		return balena.Device{}, &balena.Error{Op: op, Class: balena.ErrInvalid,
			Msg: "registration reply lacks the device id or has another UUID or key"}
	default:
		dev.ID, dev.Key = created.ID, balena.Secret(deviceKey)
		c.log.Debug().Str("uuid", r.UUID).Int64("device_id", dev.ID).Str("app", app.slug).
			Str("device_type", dev.DeviceType).Msg("device registered")
	}
	if err := c.describe(ctx, dev.ID, r); err != nil {
		return balena.Device{}, err
	}
	return dev, nil
}

// existing resolves a registration conflict: the UUID's device is
// returned when it belongs to app; otherwise conflict stands.
func (c *Client) existing(ctx context.Context, op string, app appInfo, dev balena.Device, conflict error) (balena.Device, error) {
	d, found, err := c.device(ctx, dev.UUID, ownerSelect)
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
	c.log.Debug().Str("uuid", dev.UUID).Int64("device_id", d.ID).Msg("device was already registered")
	dev.ID, dev.Existing = d.ID, true
	return dev, nil
}

// describe names and tags the device. A tag that exists already was set
// by an earlier try of the same unit.
func (c *Client) describe(ctx context.Context, id int64, r balena.Registration) error {
	if r.Name != "" {
		err := c.call(ctx, request{op: "name device " + r.UUID, method: "PATCH",
			path: fmt.Sprintf("/v7/device(%d)", id), body: map[string]any{"device_name": r.Name}, want: 200})
		if err != nil {
			return err
		}
	}
	keys := make([]string, 0, len(r.Tags))
	for k := range r.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		err := c.call(ctx, request{op: "tag device " + r.UUID, method: "POST", path: "/v7/device_tag",
			body: map[string]any{"device": id, "tag_key": k, "value": r.Tags[k]}, want: 201})
		if err != nil && !errors.Is(err, balena.ErrConflict) {
			return err
		}
	}
	return nil
}

// provisioningKey returns the fleet's shared provisioning key, making one
// that expires in keyLife when there is none with keyMargin left.
func (c *Client) provisioningKey(ctx context.Context, appID int64) (string, error) {
	c.keyMu.Lock()
	defer c.keyMu.Unlock()
	c.mu.Lock()
	k, ok := c.keys[appID]
	c.mu.Unlock()
	if ok && c.now().Add(keyMargin).Before(k.expires) {
		return k.key, nil
	}
	k = provisioningKey{expires: c.now().Add(keyLife)}
	err := c.call(ctx, request{op: "create provisioning key", method: "POST", path: "/api-key/v2/", want: 200,
		body: map[string]any{
			"actorType": "application", "actorTypeId": appID, "roles": []string{"provisioning-api-key"},
			"expiryDate":  k.expires.UTC().Format(time.RFC3339),
			"description": "balena-migrate device pre-registration",
		},
		out: &k.key})
	if err == nil && k.key == "" {
		err = &balena.Error{Op: "create provisioning key", Class: balena.ErrInvalid, Msg: "empty key in reply"}
	}
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.keys[appID] = k
	c.mu.Unlock()
	return k.key, nil
}

// dropKey forgets the fleet's shared key if it is still key.
func (c *Client) dropKey(appID int64, key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys[appID].key == key {
		delete(c.keys, appID)
	}
}

// newDeviceKey makes a device API key: 32 hex digits from crypto/rand,
// the form balena's SDK makes them in.
func newDeviceKey() string {
	var b [16]byte
	// crypto/rand.Read never fails on supported platforms.
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
