package status_test

import (
	"bytes"
	"context"
	"fmt"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/metrics"
	"github.com/fleetmig/balena-migrate/internal/fleet/rollout"
	"github.com/fleetmig/balena-migrate/internal/fleet/spool"
	"github.com/fleetmig/balena-migrate/internal/fleet/status"
	"github.com/fleetmig/balena-migrate/internal/fleet/unit"
	"github.com/fleetmig/balena-migrate/internal/fleet/worker"
	"github.com/fleetmig/balena-migrate/internal/testenv"
	"github.com/rs/zerolog"
)

// fixture builds a database with units in every state, a claim in a
// pipeline step, failures of two classes, a rollout at its second wave
// and a pause.
func fixture(t *testing.T) *spool.DB {
	t.Helper()
	db, err := spool.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var us []*unit.Unit
	for i := 0; i < 12; i++ {
		u, _ := unit.New(fmt.Sprintf("gw-%02d", i), time.Now())
		us = append(us, u)
	}
	if _, err := db.AddMany(us); err != nil {
		t.Fatal(err)
	}
	move := func(id string, to spool.Dir, edit func(u *unit.Unit)) {
		found, _ := db.Find(id)
		name := found[0].Path[strings.LastIndexByte(found[0].Path, '/')+1:]
		c, err := db.Claim(spool.Units, name, time.Time{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		u := c.Unit.Clone()
		edit(u)
		if to == spool.Tmp {
			if err := c.Update(u); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Release() })
			return
		}
		if _, err := c.Finish(to, u); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	for i, class := range map[int]devproto.Class{0: devproto.ClassStage2, 1: devproto.ClassNoSpace, 2: devproto.ClassNoSpace} {
		move(fmt.Sprintf("gw-%02d", i), spool.Fail, func(u *unit.Unit) { u.SetFail(class, "it broke \"badly\"", now) })
	}
	for i := 3; i < 6; i++ {
		move(fmt.Sprintf("gw-%02d", i), spool.Done, func(u *unit.Unit) {
			u.SetStatus(unit.StatusMigrated, now.Add(-5*time.Minute))
			u.SetStatus(unit.StatusDone, now)
		})
	}
	move("gw-06", spool.Process, func(u *unit.Unit) { u.SetStatus(unit.StatusMigrated, now) })
	move("gw-07", spool.Tmp, func(u *unit.Unit) {
		u.Set(unit.FieldStep, "transfer")
		u.Set(unit.FieldStepTS, unit.Epoch(now.Add(-90*time.Second)))
	})
	os.WriteFile(db.Path("", rollout.StateFile), rollout.State{Waves: "1,5,100%", Wave: 2, WaveAt: now}.Marshal(), 0o600)
	os.WriteFile(db.Path("", rollout.PausedFile), rollout.Pause{At: now, Reason: "3 of 6 units ended failed, more than --max-fail 10% allows",
		Ended: 6, Failed: 3, Classes: map[devproto.Class]int{devproto.ClassNoSpace: 2, devproto.ClassStage2: 1}, Units: []string{"gw-00", "gw-01", "gw-02"}, By: "test"}.Marshal(), 0o600)
	return db
}

// TestMetricsPassPromtool scrapes /metrics of a worker's status server
// and hands it to Prometheus' own checker.
func TestMetricsPassPromtool(t *testing.T) {
	promtool := testenv.NeedProgram(t, "promtool")
	db := fixture(t)
	m := metrics.New("migdb-migrate")
	m.Step("probe", 800*time.Millisecond)
	m.Step("transfer", 95*time.Second)
	m.Moved(spool.Units, spool.Fail, worker.Outcome{To: spool.Fail, Class: devproto.ClassAuth})
	m.Moved(spool.Units, spool.Units, worker.Outcome{To: spool.Units, Class: devproto.ClassTimeout})
	done, _ := unit.New("gw-x", time.Now())
	done.SetStatus(unit.StatusMigrated, time.Now().Add(-4*time.Minute))
	done.SetStatus(unit.StatusDone, time.Now())
	m.Moved(spool.Process, spool.Done, worker.Outcome{To: spool.Done, Unit: done})
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v7/device(") {
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer api.Close()
	hc := &http.Client{Transport: m.Transport(nil)}
	for _, p := range []string{"/v7/device(17)", "/v7/device(18)", "/actor/v1/whoami"} {
		resp, err := hc.Get(api.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if _, err := hc.Get("http://127.0.0.1:1/device/register"); err == nil {
		t.Fatal("a request to a closed port answered")
	}
	srv := httptest.NewServer(status.Handler(&status.Census{DB: db}, m, "migdb-migrate"))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("content type %q", ct)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
		t.Fatalf("promtool check metrics: %v\n%s\n---\n%s", err, out, body)
	}
	for _, want := range []string{
		`migdb_units{state="units"} 4`, `migdb_units{state="tmp"} 1`, `migdb_units{state="process"} 1`,
		`migdb_units{state="done"} 3`, `migdb_units{state="fail"} 3`,
		`migdb_failed_units{class="no_space"} 2`, `migdb_failed_units{class="stage2"} 1`,
		`migdb_units_in_flight{phase="migrate",step="transfer"} 1`,
		`migdb_rollout_wave 2`, `migdb_rollout_waves 3`, `migdb_rollout_wave_limit_units 5`, `migdb_submitted_units 12`,
		`migdb_rollout_paused 1`,
		`migdb_ssh_errors_total{class="auth"} 1`, `migdb_ssh_errors_total{class="timeout"} 1`, `migdb_ssh_errors_total{class="dns"} 0`,
		`migdb_balena_requests_total{route="GET /v7/device(<id>)",code="404"} 2`,
		`migdb_balena_requests_total{route="GET /actor/v1/whoami",code="200"} 1`,
		`migdb_balena_requests_total{route="GET /device/register",code="error"} 1`,
		`migdb_step_duration_seconds_bucket{step="transfer",le="120"} 1`, `migdb_step_duration_seconds_count{step="probe"} 1`,
		`migdb_time_to_online_seconds_bucket{le="300"} 1`, `migdb_time_to_online_seconds_count 1`,
		`migdb_moves_total{from="units",to="fail"} 1`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("missing %s", want)
		}
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", body)
	}
}

// TestScrapeIsCachedAndContextFree: two scrapes within MaxAge read the
// database once; the handler works after its server context ends.
func TestScrapeIsCached(t *testing.T) {
	db := fixture(t)
	c := &status.Census{DB: db, MaxAge: time.Hour}
	a, err := c.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(db.Path("", rollout.PausedFile))
	b, _ := c.Snapshot()
	if a != b || b.Rollout.Paused == nil {
		t.Error("a snapshot within MaxAge was taken again")
	}
	c.MaxAge = time.Nanosecond
	time.Sleep(time.Millisecond)
	if s, _ := c.Snapshot(); s.Rollout.Paused != nil {
		t.Error("the pause was lifted but the new snapshot still shows it")
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr, err := status.Serve(ctx, "127.0.0.1:0", status.Handler(c, metrics.New("x"), "x"), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/status.json")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("status.json: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := http.Get("http://" + addr + "/"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server kept serving after its context ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testLog(t *testing.T) zerolog.Logger { return zerolog.New(zerolog.NewTestWriter(t)) }

// TestPageInChromium renders the status page in a real headless Chromium:
// the DOM it builds shows the pause, the rollout, the failures with their
// units and the units in flight; it asks the server for nothing but the
// page (no asset of any host, and no other host can be reached); and a
// screenshot is kept and named in the test output.
func TestPageInChromium(t *testing.T) {
	chromium := testenv.NeedProgram(t, "chromium")
	db := fixture(t)
	var mu sync.Mutex
	var asked []string
	h := status.Handler(&status.Census{DB: db}, metrics.New("migdb-migrate"), "migdb-migrate")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.Path)
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	html, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, outside := range []string{"http://", "https://", "src=", "<link", "@import", "url(", "<script"} {
		if bytes.Contains(html, []byte(outside)) {
			t.Errorf("the page holds %q: it must need nothing from outside", outside)
		}
	}

	browse := func(args ...string) []byte {
		t.Helper()
		base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + t.TempDir(), "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, chromium, append(base, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium %v: %v\n%s", args, err, stderr.Bytes())
		}
		return out
	}
	dom := string(browse("--dump-dom", srv.URL+"/"))
	for _, want := range []string{
		`id="paused"`, "PAUSED", "more than --max-fail 10% allows", "migdb-migrate --resume",
		`id="wave"`, "Wave <b>2</b> of 3", "the first 5 of 12 units submitted",
		`id="failures"`, "<code>no_space</code>", "<code>stage2</code>", "<code>gw-00</code>",
		`id="inflight"`, "<code>gw-07</code>", "transfer",
		`id="states"`, "<code>done/</code>",
		`http-equiv="refresh" content="5"`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the DOM Chromium built lacks %q", want)
		}
	}
	if t.Failed() {
		t.Fatalf("DOM:\n%s", dom)
	}

	shot := filepath.Join(os.TempDir(), "balena-migrate-status-page.png")
	os.Remove(shot)
	browse("--window-size=1280,1100", "--hide-scrollbars", "--screenshot="+shot, srv.URL+"/")
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	colors := map[color.RGBA]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 4 {
		for x := b.Min.X; x < b.Max.X; x += 4 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colors[color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8), 255}] = true
		}
	}
	// The pause banner is the page's red: it must be on the picture.
	if b.Dx() != 1280 || b.Dy() != 1100 || len(colors) < 20 || !colors[color.RGBA{0xb0, 0x00, 0x20, 255}] {
		t.Errorf("screenshot %s: %v, %d colours, pause red %v", shot, b, len(colors), colors[color.RGBA{0xb0, 0x00, 0x20, 255}])
	}
	st, _ := os.Stat(shot)
	t.Logf("screenshot of the status page: %s (%dx%d, %d bytes)", shot, b.Dx(), b.Dy(), st.Size())

	mu.Lock()
	defer mu.Unlock()
	for _, p := range asked {
		if p != "/" && p != "/favicon.ico" {
			t.Errorf("the page made the browser ask for %s", p)
		}
	}
}
