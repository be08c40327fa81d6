package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
)

// APIUse is what the balena API served during a run, by route: the
// workers' requests and the devices' own (the supervisor's state GETs and
// PATCHes).
type APIUse struct {
	Routes map[string]int
}

// Device says whether a route is the devices' own.
func deviceRoute(route string) bool { return strings.Contains(route, "/device/v3/") }

// Workers is how many requests the workers made.
func (u APIUse) Workers() int {
	n := 0
	for r, c := range u.Routes {
		if !deviceRoute(r) {
			n += c
		}
	}
	return n
}

// WriteTo prints the requests by route.
func (u APIUse) write(w io.Writer, units int) {
	routes := make([]string, 0, len(u.Routes))
	for r := range u.Routes {
		routes = append(routes, r)
	}
	sort.Strings(routes)
	fmt.Fprintf(w, "balena API: %d requests from the workers for %d units; by route:", u.Workers(), units)
	for _, r := range routes {
		fmt.Fprintf(w, " %s=%d", r, u.Routes[r])
	}
	fmt.Fprintln(w)
}

// apiUse reads what the API served: the real server's request log, or
// the fake's counters.
func (r *run) apiUse(ctx context.Context) (APIUse, error) {
	if r.api != nil {
		routes, err := r.api.Requests()
		return APIUse{Routes: routes}, err
	}
	req, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodGet, r.url+"/_fake/calls", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return APIUse{}, err
	}
	defer resp.Body.Close()
	u := APIUse{Routes: map[string]int{}}
	return u, json.NewDecoder(resp.Body).Decode(&u.Routes)
}
