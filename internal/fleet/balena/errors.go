package balena

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Error classes. Every error an implementation returns wraps at most one of
// them; callers test with errors.Is.
var (
	// ErrUnauthorized: balena rejected the credentials (HTTP 401, or the CLI
	// is not logged in). Retrying does not help; the operator must act
	// (TokenAdvice), and a worker stops rather than fail every unit.
	ErrUnauthorized = errors.New("balena rejected the credentials")
	// ErrNotFound: the application or device does not exist (or is not
	// visible to these credentials).
	ErrNotFound = errors.New("not found in balena")
	// ErrTransient: network trouble, 429 or 5xx that outlasted the retries.
	// Callers should back off and try again later, never fail a unit for it.
	ErrTransient = errors.New("balena temporarily unavailable")
	// ErrConflict: the request clashes with existing state (a UUID that is
	// already registered, an ambiguous application name).
	ErrConflict = errors.New("conflict in balena")
	// ErrInvalid: balena refused the request as wrong (other 4xx, a reply
	// that does not have the expected shape). Retrying does not help.
	ErrInvalid = errors.New("balena refused the request")
)

// Error is a failed balena operation. It unwraps to its Class and to the
// underlying error, so errors.Is works for both (ErrTransient and
// context.DeadlineExceeded, say). Its text never holds a token or key.
type Error struct {
	Op     string // what was being done, e.g. "register device"
	Status int    // HTTP status, 0 when there was no HTTP reply
	Class  error  // one of the Err* classes above, or nil
	Msg    string // detail from balena or advice for the operator
	// RetryAfter is the wait balena asked for (HTTP 429 Retry-After).
	RetryAfter time.Duration
	Err        error // underlying error, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("balena: ")
	b.WriteString(e.Op)
	if e.Class != nil {
		b.WriteString(": ")
		b.WriteString(e.Class.Error())
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.Status)
	}
	if e.Msg != "" {
		b.WriteString(": ")
		b.WriteString(e.Msg)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap gives the class and the underlying error to errors.Is / errors.As.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Class != nil {
		errs = append(errs, e.Class)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// TokenAdvice is what the operator does about ErrUnauthorized. The API
// adapter puts it in the error (the CLI adapter its own), so every message
// that carries the error says it, once; the workers stop on it.
const TokenAdvice = "the token was rejected: log in again (balena login) or give a valid API key with --balena-token / MIG_BALENA_TOKEN / " +
	"BALENA_API_KEY or in ~/.balena/token, then start the worker again"

// ClassOfStatus maps an HTTP status to an error class: 401 unauthorized,
// 404 not found, 409 conflict, 408/429/5xx transient, other 4xx invalid.
// It returns nil for 1xx–3xx.
func ClassOfStatus(status int) error {
	switch {
	case status == 401:
		return ErrUnauthorized
	case status == 404:
		return ErrNotFound
	case status == 409:
		return ErrConflict
	case status == 408 || status == 429 || status >= 500:
		return ErrTransient
	case status >= 400:
		return ErrInvalid
	}
	return nil
}

// CheckUUID returns an ErrInvalid error for op when uuid is not a device
// UUID as NewUUID makes them, else nil.
func CheckUUID(op, uuid string) error {
	if ValidUUID(uuid) {
		return nil
	}
	return &Error{Op: op, Class: ErrInvalid,
		Msg: fmt.Sprintf("%q is not a device UUID (32 lowercase hex digits)", uuid)}
}

// Check returns an ErrInvalid error for op when r lacks its fleet, has a
// UUID NewUUID would not make, an overlong name or an empty tag key.
func (r Registration) Check(op string) error {
	if err := CheckUUID(op, r.UUID); err != nil {
		return err
	}
	if err := CheckSetting(op, r.Fleet, SettingApp); err != nil {
		return err
	}
	if len(r.Name) > maxNameLen {
		return &Error{Op: op, Class: ErrInvalid, Msg: fmt.Sprintf("device name %q is longer than %d bytes", r.Name, maxNameLen)}
	}
	for k := range r.Tags {
		if strings.TrimSpace(k) == "" {
			return &Error{Op: op, Class: ErrInvalid, Msg: "a device tag has an empty key"}
		}
	}
	return nil
}

// maxNameLen is the longest device_name balena takes.
const maxNameLen = 255

// CheckSetting returns an ErrInvalid error for op naming the setting when
// value is blank, else nil.
func CheckSetting(op, value, setting string) error {
	if strings.TrimSpace(value) != "" {
		return nil
	}
	return &Error{Op: op, Class: ErrInvalid, Msg: "no " + setting + " given"}
}

// Setting names for CheckSetting.
const (
	SettingApp     = "application (--app / MIG_APP)"
	SettingVersion = "balenaOS version (--balena-ver / MIG_BALENA_VER)"
)
