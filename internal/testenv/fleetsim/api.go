package fleetsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// APIUse is what the fake balena API saw during a run.
type APIUse struct {
	Calls map[string]int // requests per route
	// Keys are the provisioning keys issued: their expiry, nil for never.
	Keys []struct {
		Expires *time.Time `json:"expires"`
		Valid   bool       `json:"valid"`
	}
}

// osVersion is the balenaOS version of the simulated fleet.
const osVersion = "2.113.0"

// The devices' own requests (not made by the workers): the supervisor's
// state GET and PATCH.
const (
	reportRoute   = "PATCH /device/v3/state"
	stateGetRoute = "GET /device/v3/<uuid>/state"
)

// APIUse asks the fake what it served.
func (f *Fleet) APIUse() (APIUse, error) {
	var u APIUse
	for path, v := range map[string]any{"/_fake/calls": &u.Calls, "/_fake/provisioning-keys": &u.Keys} {
		resp, err := http.Get(f.URL + path)
		if err != nil {
			return u, err
		}
		err = json.NewDecoder(resp.Body).Decode(v)
		resp.Body.Close()
		if err != nil {
			return u, fmt.Errorf("fake balena API %s: %w", path, err)
		}
	}
	return u, nil
}

// WorkerRequests is how many requests the workers made (the devices'
// own reports left out).
func (u APIUse) WorkerRequests() int {
	n := 0
	for route, c := range u.Calls {
		if route != reportRoute && route != stateGetRoute {
			n += c
		}
	}
	return n
}

// KeySummary says how many provisioning keys were issued, how many never
// expire, and by when the others are all expired.
func (u APIUse) KeySummary(now time.Time) string {
	forever := 0
	var last time.Time
	for _, k := range u.Keys {
		switch {
		case k.Expires == nil:
			forever++
		case k.Expires.After(last):
			last = *k.Expires
		}
	}
	s := fmt.Sprintf("%d provisioning keys issued, %d without expiry", len(u.Keys), forever)
	if !last.IsZero() {
		s += fmt.Sprintf("; the last expires %v after the run", last.Sub(now).Round(time.Second))
	}
	return s
}
