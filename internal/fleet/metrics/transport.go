package metrics

import (
	"net/http"
	"strings"
)

// Transport counts every request made through next (nil: the default
// transport) by route and status. Wrapped around the balena API client's
// transport, it sees each request the adapters make, retries included,
// without a change to any of them.
func (m *Metrics) Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return roundTripper{m: m, next: next}
}

type roundTripper struct {
	m    *Metrics
	next http.RoundTripper
}

func (t roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	code := 0
	if err == nil {
		code = resp.StatusCode
	}
	t.m.request(Route(r.Method, r.URL.Path), code)
	return resp, err
}

// Route names a request by method and path with its ids left out, so
// that routes stay few: /v7/device(123) is /v7/device(<id>),
// /api-key/device/123/device-key is /api-key/device/<id>/device-key.
func Route(method, path string) string {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if open := strings.IndexByte(p, '('); open >= 0 && strings.HasSuffix(p, ")") {
			parts[i] = p[:open] + "(<id>)"
			continue
		}
		if p != "" && strings.Trim(p, "0123456789") == "" {
			parts[i] = "<id>"
		}
	}
	return method + " " + strings.Join(parts, "/")
}
