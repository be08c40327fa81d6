package fakebalena

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// ErrUnknownDevice is returned by SetOnline for a UUID the fake has not
// registered.
var ErrUnknownDevice = errors.New("fake balena: no such device")

// AddUser creates an account authenticated by token and returns it.
func (a *API) AddUser(username, token string) User {
	a.mu.Lock()
	defer a.mu.Unlock()
	u := &User{ID: a.id(), Username: username, Email: username + "@example.com", Token: token}
	a.users = append(a.users, u)
	return *u
}

// AddApp creates an application with slug "org/name" for deviceType and
// returns it. The application's name is the part after the slash.
func (a *API) AddApp(slug, deviceType string) App {
	// The real server cannot make a fleet of a type it does not know.
	if _, ok := knownType(deviceType); !ok {
		panic("fakebalena: AddApp: balena knows no device type " + deviceType)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	slug = strings.ToLower(slug)
	name := slug
	if i := strings.LastIndexByte(slug, '/'); i >= 0 {
		name = slug[i+1:]
	}
	app := &App{ID: a.id(), Slug: slug, Name: name, DeviceType: deviceType}
	a.apps = append(a.apps, app)
	return *app
}

// Apps lists the applications.
func (a *API) Apps() []App {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]App, 0, len(a.apps))
	for _, app := range a.apps {
		out = append(out, *app)
	}
	return out
}

// Devices lists the registered devices, oldest first.
func (a *API) Devices() []Device {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Device
	for _, d := range a.sortedLocked() {
		out = append(out, *d)
	}
	return out
}

func (a *API) sortedLocked() []*Device {
	out := make([]*Device, 0, len(a.devices))
	for _, d := range a.devices {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Device returns the device with uuid, if registered.
func (a *API) Device(uuid string) (Device, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	d, ok := a.devices[uuid]
	if !ok {
		return Device{}, false
	}
	return *d, true
}

// Online reports whether the device is online now.
func (a *API) Online(uuid string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	d, ok := a.devices[uuid]
	return ok && a.onlineLocked(d)
}

// SetOnline forces the device online or offline, whatever it reported: for
// tests of the workers that need no device behind the UUID.
func (a *API) SetOnline(uuid string, online bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	d, ok := a.devices[uuid]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownDevice, uuid)
	}
	d.ForcedOnline = &online
	return nil
}

// FailNext makes the next len(statuses) API requests fail with these
// statuses, in order, before any rate fault applies.
func (a *API) FailNext(statuses ...int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.script = append(a.script, statuses...)
}

// SetFaults changes the fault rate, fault status and latency.
func (a *API) SetFaults(rate float64, status int, latency time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cfg.FaultRate = rate
	if status != 0 {
		a.cfg.FaultStatus = status
	}
	a.cfg.Latency = latency
}

// Calls is how many requests reached route (faulted ones included).
func (a *API) Calls(route Route) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[route]
}

// RegisterCalls is how many /device/register requests named uuid and got
// past authentication (conflicts included).
func (a *API) RegisterCalls(uuid string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.registers[uuid]
}

// Faults is how many requests were answered with an injected fault.
func (a *API) Faults() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.faults
}

// SetVPN connects or disconnects the device's VPN (is_online), as balena's
// VPN service does.
func (a *API) SetVPN(uuid string, up bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	d, ok := a.devices[uuid]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownDevice, uuid)
	}
	d.VPN = up
	return nil
}

// Heartbeat is the device's api_heartbeat_state now.
func (a *API) Heartbeat(uuid string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	d, ok := a.devices[uuid]
	if !ok {
		return ""
	}
	return a.heartbeatLocked(d)
}

// heartbeatLocked: unknown before the first heartbeat, online for 1.5
// poll intervals after the last, then timeout for HeartbeatTimeout, then
// offline.
func (a *API) heartbeatLocked(d *Device) string {
	if d.ForcedOnline != nil {
		if *d.ForcedOnline {
			return "online"
		}
		return "offline"
	}
	if d.SeenAt.IsZero() {
		return "unknown"
	}
	window := a.cfg.PollInterval * 3 / 2
	switch age := a.cfg.Now().Sub(d.SeenAt); {
	case age < window:
		return "online"
	case age < window+a.cfg.HeartbeatTimeout:
		return "timeout"
	}
	return "offline"
}

// vpnLocked is is_online.
func (a *API) vpnLocked(d *Device) bool {
	if d.ForcedOnline != nil {
		return *d.ForcedOnline
	}
	return d.VPN
}

// onlineLocked: online by VPN or by heartbeat, as balena counts it.
func (a *API) onlineLocked(d *Device) bool {
	return a.vpnLocked(d) || a.heartbeatLocked(d) == "online"
}

// find returns the first item that matches, or nil.
func find[T any](items []*T, match func(*T) bool) *T {
	for _, it := range items {
		if match(it) {
			return it
		}
	}
	return nil
}

func (a *API) userByToken(token string) *User {
	return find(a.users, func(u *User) bool { return token != "" && u.Token == token })
}

func (a *API) appByID(id int64) *App {
	return find(a.apps, func(app *App) bool { return app.ID == id })
}

func (a *API) deviceByID(id int64) *Device {
	for _, d := range a.devices {
		if d.ID == id {
			return d
		}
	}
	return nil
}

func (a *API) newKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// provisioningKeyLocked creates a provisioning key for app, valid until
// expires (zero: forever).
func (a *API) provisioningKeyLocked(appID int64, expires time.Time) string {
	k := a.newKey()
	a.provKeys[k] = provKey{appID: appID, expires: expires}
	return k
}

// ErrUnknownApp is returned by AddDevice for an application the fake does
// not have.
var ErrUnknownApp = errors.New("fake balena: no such application")

// AddDevice registers a device directly (no HTTP, no faults), as if it had
// registered now, and returns it with a device API key it can report with:
// for tests that start with devices in place. A UUID that is already
// registered is an error.
func (a *API) AddDevice(appSlug, uuid string) (Device, string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	app := find(a.apps, func(app *App) bool { return app.Slug == strings.ToLower(appSlug) })
	switch {
	case app == nil:
		return Device{}, "", fmt.Errorf("%w: %s", ErrUnknownApp, appSlug)
	case !uuidRE.MatchString(uuid):
		return Device{}, "", fmt.Errorf("fake balena: %q is not a device UUID", uuid)
	case a.devices[uuid] != nil:
		return Device{}, "", fmt.Errorf("fake balena: device %s already registered", uuid)
	}
	d := &Device{ID: a.id(), UUID: uuid, AppID: app.ID, DeviceType: app.DeviceType, RegisteredAt: a.cfg.Now(),
		DeviceKeys: 1}
	a.devices[uuid] = d
	key := a.newKey()
	a.deviceKeys[key] = d.ID
	return *d, key, nil
}
