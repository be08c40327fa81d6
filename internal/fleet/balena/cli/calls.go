package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
)

// Whoami runs `balena whoami` and reads its vertical table: USERNAME and
// EMAIL for a user login, APPLICATION or DEVICE for a key that belongs to
// one (then Username holds that slug or UUID). The CLI does not print the
// user id, so User.ID is 0.
func (c *Client) Whoami(ctx context.Context) (balena.User, error) {
	out, err := c.run(ctx, "check credentials", "whoami")
	if err != nil {
		return balena.User{}, withLoginAdvice(err)
	}
	fields := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if key, val, ok := strings.Cut(sc.Text(), ":"); ok {
			fields[strings.ToUpper(strings.TrimSpace(key))] = strings.TrimSpace(val)
		}
	}
	u := balena.User{Username: fields["USERNAME"], Email: fields["EMAIL"]}
	for _, k := range []string{"APPLICATION", "DEVICE"} {
		if u.Username == "" {
			u.Username = fields[k]
		}
	}
	if u.Username == "" {
		return balena.User{}, &balena.Error{Op: "check credentials", Class: balena.ErrInvalid,
			Msg: "balena whoami printed no account: " + firstLines(string(out), 2)}
	}
	return u, nil
}

// withLoginAdvice adds what to do to an ErrUnauthorized from the CLI.
func withLoginAdvice(err error) error {
	var be *balena.Error
	if errors.As(err, &be) && be.Class == balena.ErrUnauthorized {
		be.Msg += " (the balena CLI is not logged in or its token was rejected: run balena login)"
	}
	return err
}

// deviceInfo is what this package reads from `balena device <uuid> --json`.
type deviceInfo struct {
	ID         int64  `json:"id"`
	UUID       string `json:"uuid"`
	Name       string `json:"device_name"`
	IsOnline   bool   `json:"is_online"`
	Heartbeat  string `json:"api_heartbeat_state"`
	OSVersion  string `json:"os_version"`
	Supervisor string `json:"supervisor_version"`
	Fleet      string `json:"fleet"`
	DeviceType string `json:"device_type"`
}

// device runs `balena device <uuid> --json`; found is false when balena
// does not know the device.
func (c *Client) device(ctx context.Context, uuid string) (d deviceInfo, found bool, err error) {
	out, err := c.run(ctx, "look up device "+uuid, "device", uuid, "--json")
	if errors.Is(err, balena.ErrNotFound) {
		return deviceInfo{}, false, nil
	}
	if err != nil {
		return deviceInfo{}, false, withLoginAdvice(err)
	}
	if err := json.Unmarshal(out, &d); err != nil || d.UUID != uuid {
		return deviceInfo{}, false, &balena.Error{Op: "look up device " + uuid, Class: balena.ErrInvalid,
			Msg: "unexpected output of balena device --json", Err: err}
	}
	return d, true, nil
}

// Status reads is_online, api_heartbeat_state, the versions and the type
// from `balena device <uuid> --json`.
func (c *Client) Status(ctx context.Context, uuid string) (balena.DeviceStatus, error) {
	if err := balena.CheckUUID("check device status", uuid); err != nil {
		return balena.DeviceStatus{}, err
	}
	d, found, err := c.device(ctx, uuid)
	if err != nil {
		return balena.DeviceStatus{}, err
	}
	if !found {
		return balena.DeviceStatus{}, &balena.Error{Op: "check device status", Class: balena.ErrNotFound, Msg: "no device " + uuid}
	}
	return balena.DeviceStatus{ID: d.ID, Heartbeat: d.Heartbeat, VPN: d.IsOnline, OSVersion: d.OSVersion,
		SupervisorVersion: d.Supervisor, DeviceType: d.DeviceType}, nil
}

// IsOnline is Status(…).Online(): online by VPN or by heartbeat.
func (c *Client) IsOnline(ctx context.Context, uuid string) (bool, error) {
	st, err := c.Status(ctx, uuid)
	return st.Online(), err
}

// Register runs `balena device register <fleet> --uuid <uuid>
// [--deviceType <type>]`, then looks the device up for its id, renames it
// (`balena device rename <uuid> <name>`) and tags it (`balena tag set <key>
// <value> --device <uuid>`) when asked. A UUID that is already registered
// is looked up and returned with Existing set, unless it belongs to
// another fleet.
func (c *Client) Register(ctx context.Context, r balena.Registration) (balena.Device, error) {
	op := "register device " + r.UUID
	if err := r.Check(op); err != nil {
		return balena.Device{}, err
	}
	args := []string{"device", "register", r.Fleet, "--uuid", r.UUID}
	if r.DeviceType != "" {
		args = append(args, "--deviceType", r.DeviceType)
	}
	_, err := c.run(ctx, op, args...)
	existing := errors.Is(err, balena.ErrConflict)
	if err != nil && !existing {
		return balena.Device{}, withLoginAdvice(err)
	}
	d, found, lookErr := c.device(ctx, r.UUID)
	switch {
	case lookErr != nil:
		return balena.Device{}, lookErr
	case !found:
		return balena.Device{}, &balena.Error{Op: op, Class: balena.ErrNotFound,
			Msg: "the device is not visible after registering it"}
	case existing && strings.Contains(r.Fleet, "/") && d.Fleet != "" && !strings.EqualFold(d.Fleet, r.Fleet):
		return balena.Device{}, &balena.Error{Op: op, Class: balena.ErrConflict,
			Msg: "the UUID is already registered in fleet " + d.Fleet}
	}
	if r.Name != "" && d.Name != r.Name {
		if _, err := c.run(ctx, "name device "+r.UUID, "device", "rename", r.UUID, r.Name); err != nil {
			return balena.Device{}, withLoginAdvice(err)
		}
	}
	keys := make([]string, 0, len(r.Tags))
	for k := range r.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, err := c.run(ctx, "tag device "+r.UUID, "tag", "set", k, r.Tags[k], "--device", r.UUID); err != nil {
			return balena.Device{}, withLoginAdvice(err)
		}
	}
	return balena.Device{ID: d.ID, UUID: r.UUID, Fleet: r.Fleet, DeviceType: d.DeviceType, Existing: existing}, nil
}

// DeviceConfig runs `balena config generate --device <uuid> --version <v>
// --network ethernet --appUpdatePollInterval 10 --output <file>` into a
// private temporary file, reads it and removes it. The CLI takes the
// fleet and device type from the device and makes its key itself.
func (c *Client) DeviceConfig(ctx context.Context, dev balena.Device, version string) ([]byte, error) {
	uuid := dev.UUID
	op := "generate config.json for " + uuid
	if err := errors.Join(balena.CheckUUID(op, uuid), balena.CheckSetting(op, version, balena.SettingVersion)); err != nil {
		return nil, err
	}
	if dev.ID == 0 {
		return nil, &balena.Error{Op: op, Class: balena.ErrInvalid, Msg: "the device has no id: register it first"}
	}
	dir, err := os.MkdirTemp("", "balena-config-")
	if err != nil {
		return nil, fmt.Errorf("balena: %s: %w", op, err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		return nil, fmt.Errorf("balena: %s: %w", op, err)
	}
	_, err = c.run(ctx, op, "config", "generate", "--device", uuid, "--version", version,
		"--network", "ethernet", "--appUpdatePollInterval", "10", "--output", path)
	if err != nil {
		return nil, withLoginAdvice(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("balena: %s: reading the CLI's output: %w", op, err)
	}
	var cfg struct {
		UUID string `json:"uuid"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil || cfg.UUID != uuid {
		return nil, &balena.Error{Op: op, Class: balena.ErrInvalid,
			Msg: "the generated config.json does not carry the device's UUID", Err: err}
	}
	return data, nil
}

// CheckFleet checks the reference and version for form and looks the
// fleet up with `balena fleet <fleet>`. The CLI makes its provisioning
// keys itself and lists no OS releases here, so neither is checked:
// OSVersionChecked stays false.
func (c *Client) CheckFleet(ctx context.Context, ref, version string) (balena.Fleet, error) {
	op := fmt.Sprintf("check fleet %q", strings.TrimSpace(ref))
	if err := balena.CheckFleetSettings(op, ref, version); err != nil {
		return balena.Fleet{}, err
	}
	if _, err := c.run(ctx, op, "fleet", strings.TrimSpace(ref)); err != nil {
		return balena.Fleet{}, withLoginAdvice(err)
	}
	return balena.Fleet{Slug: strings.TrimSpace(ref)}, nil
}

// SetTag runs `balena tag set <key> <value> --device <uuid>`, which
// replaces a tag of that key.
func (c *Client) SetTag(ctx context.Context, uuid, key, value string) error {
	op := fmt.Sprintf("tag device %s with %s", uuid, key)
	if err := balena.CheckUUID(op, uuid); err != nil {
		return err
	}
	if strings.TrimSpace(key) == "" {
		return &balena.Error{Op: op, Class: balena.ErrInvalid, Msg: "empty tag key"}
	}
	_, err := c.run(ctx, op, "tag", "set", key, value, "--device", uuid)
	return withLoginAdvice(err)
}

// ProgressTag is the tag the cli adapter shows migration progress in: the
// CLI cannot set a device's provisioning state.
const ProgressTag = "migdb_progress"

// SetProgress tags the device with ProgressTag = "<percent>% <state>"; a
// device balena does not know is left alone.
func (c *Client) SetProgress(ctx context.Context, uuid, state string, percent int) error {
	err := c.SetTag(ctx, uuid, ProgressTag, fmt.Sprintf("%d%% %s", min(max(percent, 0), 100), state))
	if errors.Is(err, balena.ErrNotFound) {
		return nil
	}
	return err
}

// DeviceTypes runs `balena device-type list --all --json`: every type,
// supported or not, with its aliases and architecture.
func (c *Client) DeviceTypes(ctx context.Context) ([]balena.DeviceType, error) {
	const op = "list device types"
	out, err := c.run(ctx, op, "device-type", "list", "--all", "--json")
	if err != nil {
		return nil, withLoginAdvice(err)
	}
	var listed []struct {
		Slug    string   `json:"slug"`
		Name    string   `json:"name"`
		Arch    string   `json:"arch"`
		Aliases []string `json:"aliases"`
	}
	if err := json.Unmarshal(out, &listed); err != nil || len(listed) == 0 {
		return nil, &balena.Error{Op: op, Class: balena.ErrInvalid, Msg: "the CLI listed no device types as JSON", Err: err}
	}
	types := make([]balena.DeviceType, 0, len(listed))
	for _, t := range listed {
		types = append(types, balena.DeviceType{Slug: t.Slug, Name: t.Name, Arch: t.Arch, Aliases: t.Aliases})
	}
	return types, nil
}
