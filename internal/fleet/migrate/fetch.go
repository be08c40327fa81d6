package migrate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/fleet/worker"
	"github.com/fleetmig/balena-migrate/internal/usage"
)

// fetchImage has the device download the balenaOS image itself when the
// unit has MIG_IMAGE_URL: from that base URL (a mirror near the devices, or
// one in front of balena's downloads) instead of through this host. The
// worker knows the SHA-256 before anything is fetched — from
// IMAGE_NAME.sha256 in the environment — and balena-migrate fetch keeps
// the file only if it matches, so stage 1 never sees another image.
func (j *job) fetchImage(ctx context.Context, dev Device) (worker.Outcome, bool) {
	base := j.s.Unit.ImageURL
	url, sum, err := j.imageSource(ctx, base)
	if err != nil {
		return j.deviceTrouble(ctx, "preparing the image download", err), false
	}
	files, err := topFiles(ctx, j.env.src)
	if err != nil {
		return j.deviceTrouble(ctx, "reading the migration environment", usage.Wrap(err)), false
	}
	bin, err := j.binary(files)
	if err != nil {
		return j.deviceTrouble(ctx, "choosing balena-migrate", err), false
	}
	tctx, cancel := context.WithTimeout(ctx, j.s.Migrate.TxTimeout)
	defer cancel()
	j.step("the device fetches %s (limit %v)", url, j.s.Migrate.TxTimeout)
	cmd := fmt.Sprintf("cd %s && %s fetch --url %s --sha256 %s --out %s", devproto.Dir, bin, shellWord(url), sum, shellWord(j.env.image))
	out, err := dev.Output(tctx, cmd, nil)
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			j.ulog.Log.Info().Msg(l)
		}
	}
	if err != nil {
		if f, ok := devproto.LastFailure(string(out)); ok {
			err = fmt.Errorf("%w (%s: %s)", err, f.Named(), f.Msg)
		}
		return j.deviceTrouble(ctx, "fetching the image on the device", err), false
	}
	return worker.Outcome{}, true
}

// imageSource is the URL of the environment's image under base and the
// SHA-256 the worker expects of it.
func (j *job) imageSource(ctx context.Context, base string) (url, sum string, err error) {
	if j.env.image == "" {
		return "", "", usage.Errorf("MIG_IMAGE_URL is set, but %s in %s names no IMAGE_NAME", devproto.ConfName, j.env.path)
	}
	if _, err := j.env.src.ReadFile(ctx, j.env.image, 1); err == nil {
		return "", "", usage.Errorf("MIG_IMAGE_URL is set, but %s holds the image %s: remove it, the devices fetch it themselves", j.env.path, j.env.image)
	}
	data, err := j.env.src.ReadFile(ctx, j.env.image+".sha256", 4096)
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", usage.Errorf("MIG_IMAGE_URL is set, but %s has no %s.sha256: write it with sha256sum %s > %s.sha256", j.env.path, j.env.image, j.env.image, j.env.image)
	}
	if err != nil {
		return "", "", usage.Wrap(err)
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 || len(fields[0]) != 64 || strings.Trim(strings.ToLower(fields[0]), "0123456789abcdef") != "" {
		return "", "", usage.Errorf("%s.sha256 in %s does not start with a SHA-256", j.env.image, j.env.path)
	}
	return strings.TrimRight(base, "/") + "/" + path.Base(j.env.image), strings.ToLower(fields[0]), nil
}

// shellWord quotes s for the device's shell.
func shellWord(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
