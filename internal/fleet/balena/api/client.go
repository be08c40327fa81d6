// Package api owns the native HTTPS adapter of balena.Cloud: the balena API
// calls the official SDK makes (docs/balena.md), with a bearer token, retries with
// backoff on network errors, 429 and 5xx, and errors classified with the
// balena package's error classes.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fleetmig/balena-migrate/internal/fleet/balena"
	"github.com/rs/zerolog"
)

// maxReply bounds how much of a reply is read.
const maxReply = 4 << 20

// Client talks to the balena API. It is safe for concurrent use. So that
// a unit costs few round trips, it keeps for its lifetime the token's
// user, each fleet it looked up and each config.json template (per fleet,
// device type and version), and it reuses a short-lived provisioning key
// per fleet across registrations until shortly before it expires.
type Client struct {
	base  string
	token string
	hc    *http.Client
	retry balena.RetryPolicy
	log   zerolog.Logger
	now   func() time.Time

	mu        sync.Mutex
	apps      map[string]appInfo
	user      *balena.User
	keys      map[int64]provisioningKey // by application id
	templates map[templateID]map[string]json.RawMessage

	// userMu, appMu, keyMu and templateMu serialise asking who we are,
	// looking fleets up, making keys and fetching templates, so jobs
	// starting together make one request, not one each.
	userMu     sync.Mutex
	appMu      sync.Mutex
	keyMu      sync.Mutex
	templateMu sync.Mutex
}

var _ balena.Cloud = (*Client)(nil)

// New returns a client for opts.APIURL authenticated by the token that
// balena.ResolveToken finds. It makes no request.
func New(opts balena.Options) (*Client, error) {
	opts = opts.WithDefaults()
	u, err := url.Parse(opts.APIURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("balena API URL %q (--balena-api / MIG_BALENA_API) is not an http(s) URL", opts.APIURL)
	}
	token, err := balena.ResolveToken(opts)
	if err != nil {
		return nil, err
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: opts.Timeout}
	}
	return &Client{
		base: opts.APIURL, token: token, hc: hc, retry: opts.Retry, log: opts.Log,
		now: time.Now, apps: map[string]appInfo{}, keys: map[int64]provisioningKey{},
		templates: map[templateID]map[string]json.RawMessage{},
	}, nil
}

// request is one API call.
type request struct {
	op     string // for errors and logs, e.g. "register device"
	method string
	path   string
	query  string // already encoded
	bearer string // default: the client's token
	body   any    // JSON-encoded when not nil
	want   int    // the success status
	out    any    // the reply is JSON-decoded into it when not nil
}

// call makes req, retrying transient failures per the retry policy.
func (c *Client) call(ctx context.Context, req request) error {
	try := 0
	return c.retry.Do(ctx, func(ctx context.Context) error {
		try++
		return c.once(ctx, req, try)
	})
}

func (c *Client) once(ctx context.Context, req request, try int) error {
	hreq, err := c.newRequest(ctx, req)
	if err != nil {
		return &balena.Error{Op: req.op, Class: balena.ErrInvalid, Err: err}
	}
	start := time.Now()
	resp, err := c.hc.Do(hreq)
	if err != nil {
		c.log.Debug().Str("op", req.op).Str("method", req.method).Str("path", req.path).
			Int("try", try).Err(err).Msg("balena request failed")
		if ctx.Err() != nil {
			return &balena.Error{Op: req.op, Err: err}
		}
		return &balena.Error{Op: req.op, Class: balena.ErrTransient, Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	c.log.Debug().Str("op", req.op).Str("method", req.method).Str("path", req.path).
		Int("status", resp.StatusCode).Int("try", try).Dur("took", time.Since(start)).Msg("balena request")
	if err != nil {
		return &balena.Error{Op: req.op, Class: balena.ErrTransient, Status: resp.StatusCode,
			Err: fmt.Errorf("reading the reply: %w", err)}
	}
	if resp.StatusCode != req.want {
		return statusError(req.op, resp, data)
	}
	if req.out != nil {
		if err := json.Unmarshal(data, req.out); err != nil {
			return &balena.Error{Op: req.op, Class: balena.ErrInvalid, Status: resp.StatusCode,
				Msg: "unexpected reply", Err: err}
		}
	}
	return nil
}

func (c *Client) newRequest(ctx context.Context, req request) (*http.Request, error) {
	var body io.Reader
	if req.body != nil {
		b, err := json.Marshal(req.body)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	u := c.base + req.path
	if req.query != "" {
		u += "?" + req.query
	}
	hreq, err := http.NewRequestWithContext(ctx, req.method, u, body)
	if err != nil {
		return nil, err
	}
	token := req.bearer
	if token == "" {
		token = c.token
	}
	hreq.Header.Set("Authorization", "Bearer "+token)
	hreq.Header.Set("Accept", "application/json")
	if body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	return hreq, nil
}

// statusError classifies an unexpected status. The reply's text is kept
// (shortened) as detail; a 401 gets advice instead.
func statusError(op string, resp *http.Response, data []byte) error {
	e := &balena.Error{Op: op, Status: resp.StatusCode, Class: balena.ClassOfStatus(resp.StatusCode)}
	if e.Class == nil {
		e.Class = balena.ErrInvalid
	}
	if e.Class == balena.ErrUnauthorized {
		e.Msg = balena.TokenAdvice
	} else {
		e.Msg = shorten(strings.TrimSpace(string(data)), 200)
	}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			e.RetryAfter = time.Duration(n) * time.Second
		} else if t, err := http.ParseTime(s); err == nil {
			e.RetryAfter = time.Until(t)
		}
	}
	return e
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
