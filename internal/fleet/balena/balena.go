// Package balena owns the project's view of the balena cloud: the Cloud
// interface the workers call (who am I, register a device under a UUID we
// chose, build its config.json, is it online), the error classes every
// implementation reports (ErrUnauthorized, ErrNotFound, ErrTransient,
// ErrConflict, ErrInvalid), device UUIDs, and the settings shared by the
// implementations (Options, RetryPolicy, the token file).
//
// Implementations live in sibling packages: api (native HTTPS), cli (the
// balena CLI on PATH) and fake (an in-memory balena API for tests and demos);
// package cloud picks one by name.
package balena

import (
	"context"
	"crypto/rand"
	"encoding/hex"
)

// Cloud is what the workers need from balena. Every call honours ctx.
type Cloud interface {
	// Whoami checks the credentials with one cheap call and tells who they
	// belong to. A rejected token is ErrUnauthorized.
	Whoami(ctx context.Context) (User, error)
	// Register creates the device r describes: its UUID (one we chose), in
	// its fleet, with its own device type, name and tags. It is idempotent:
	// when the UUID already exists in that fleet the existing device is
	// returned (Existing set), so a retried unit never creates a second
	// device; in another fleet it is ErrConflict.
	Register(ctx context.Context, r Registration) (Device, error)
	// DeviceConfig builds the config.json of a device Register returned,
	// for balenaOS version: the fleet's configuration for the device's
	// type plus the device's own key, id, UUID and registration time, never
	// the fleet's provisioning key. The bytes hold the device's API key:
	// never log them.
	DeviceConfig(ctx context.Context, dev Device, version string) ([]byte, error)
	// CheckFleet checks before any device is touched that devices can be
	// registered into fleet and given a config.json for balenaOS version:
	// the fleet exists and the token sees it (ErrNotFound), the token may
	// register devices into it (ErrUnauthorized), the reference and the
	// version are well formed (ErrInvalid) and balena knows the version
	// (ErrNotFound) where it lists OS releases; an empty version checks
	// the fleet alone. Whatever it looks up is kept for the
	// registrations, so they cost no more for it.
	CheckFleet(ctx context.Context, fleet, version string) (Fleet, error)
	// DeviceTypes lists every device type balena knows (supported or not),
	// with its aliases and CPU architecture: what a registration's
	// device_type may name. CheckDeviceType decides on it.
	DeviceTypes(ctx context.Context) ([]DeviceType, error)
	// Status says whether the device with this UUID is online and how
	// (VPN or heartbeat), and what it reported about itself. A device
	// balena does not know is an ErrNotFound error: a device registered a
	// moment ago may not be visible yet, one that was deleted never will
	// be, and only the caller can tell them apart.
	Status(ctx context.Context, uuid string) (DeviceStatus, error)
	// SetTag sets the device's tag key to value, replacing the value a tag
	// of that key has (the dashboard shows tags; migdb-check-done records
	// its verdict in one).
	SetTag(ctx context.Context, uuid, key, value string) error
	// SetProgress shows on the device's dashboard entry where its
	// migration is (state, e.g. "balena-migrate: stage 1", and percent),
	// until balenaOS's supervisor reports. A device balena does not know
	// is left alone, without error.
	SetProgress(ctx context.Context, uuid, state string, percent int) error
	// IsOnline is Status(…).Online().
	IsOnline(ctx context.Context, uuid string) (bool, error)
}

// Registration is a device to register.
type Registration struct {
	// Fleet is an "org/name" slug, a numeric application id or a bare
	// application name.
	Fleet string
	UUID  string
	// DeviceType is the device's own type slug (compatible with the
	// fleet's); empty means the fleet's default type.
	DeviceType string
	// Name becomes the device_name, e.g. the unit id; empty leaves the
	// name balena makes up.
	Name string
	// Tags are set on the device (e.g. the unit id and host); none when
	// empty.
	Tags map[string]string
}

// User is the account behind the credentials.
type User struct {
	ID       int64
	Username string
	Email    string
}

// Device is a registered device.
type Device struct {
	ID         int64
	UUID       string
	Fleet      string // as given in the Registration
	DeviceType string // the type it was registered with
	// Existing is true when Register found the UUID already registered and
	// returned that device instead of creating one.
	Existing bool
	// Key is the device API key made with the registration, for its
	// config.json; empty when the device already existed (DeviceConfig
	// then makes one).
	Key Secret
}

// Secret is a credential that must not reach a log: it prints and
// marshals as "[secret]". Reveal gives the value.
type Secret string

func (s Secret) String() string { return "[secret]" }

// GoString keeps the value out of %#v.
func (s Secret) GoString() string { return `"[secret]"` }

// MarshalJSON keeps the value out of JSON logs.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"[secret]"`), nil }

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// UUIDLen is the length of the device UUIDs this project creates.
const UUIDLen = 32

// NewUUID returns a fresh device UUID: 32 lowercase hex digits from
// crypto/rand, the form balena itself generates.
func NewUUID() string {
	var b [UUIDLen / 2]byte
	// crypto/rand.Read never fails on supported platforms (it aborts the
	// program instead), so its error needs no handling.
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ValidUUID reports whether s is a device UUID as NewUUID makes them.
func ValidUUID(s string) bool {
	if len(s) != UUIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
