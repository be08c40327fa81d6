package migrate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/fleetmig/balena-migrate/internal/devicetype"
	"github.com/fleetmig/balena-migrate/internal/devproto"
	"github.com/fleetmig/balena-migrate/internal/envfile"
	"github.com/fleetmig/balena-migrate/internal/fleet/remote/upload"
	"github.com/fleetmig/balena-migrate/internal/usage"
)

// environment is the migration environment one device gets. A directory
// environment may hold one sub-directory per device type (named by its
// balena slug, e.g. raspberrypi4-64/) or per architecture (aarch64/,
// armv7l/, x86_64/ …); a device gets the first that fits it. Otherwise
// the whole environment is one for every device.
type environment struct {
	path string
	src  *upload.Source
	why  string // how it was chosen, for the unit log
	slug string // device type to register; "" leaves it to the fleet
	// noFlash: stage 2 will not flash (NO_FLASH of balena-migrate.conf,
	// read as stage 1 reads it); noFlashSays is how the file says so, for
	// a refusal ("" when there is no file).
	noFlash     bool
	noFlashSays string
	image       string // IMAGE_NAME of balena-migrate.conf
	size        int64  // bytes of its files
}

// chooseEnvironment picks the device's environment and reads what the
// fleet side needs from it. A device with no environment that fits it is
// a device_type failure; a bad balena-migrate.conf is a usage error.
func (j *job) chooseEnvironment(ctx context.Context, p probe) (environment, error) {
	root := j.s.Unit.Env()
	env := environment{path: root, why: "the whole environment"}
	if st, err := os.Stat(root); err == nil && st.IsDir() {
		sub, why, err := pickSubdir(root, p)
		if err != nil {
			return env, err
		}
		if sub != "" {
			env.path, env.why = filepath.Join(root, sub), why
			if _, ok := devicetype.Lookup(sub); ok {
				env.slug = sub
			}
		}
	}
	src, err := j.source(env.path)
	if err != nil {
		return env, err
	}
	env.src = src
	entries, err := src.Entries(ctx)
	if err != nil {
		return env, usage.Errorf("migration environment %s: %w", env.path, err)
	}
	for _, e := range entries {
		env.size += e.Size
	}
	conf, err := src.ReadFile(ctx, devproto.ConfName, 1<<20)
	if errors.Is(err, fs.ErrNotExist) {
		return env, nil
	}
	if err != nil {
		return env, usage.Errorf("%s in %s: %w", devproto.ConfName, env.path, err)
	}
	return env, env.readConf(conf, p)
}

// readConf takes the device type from IMAGE_NAME and NO_FLASH from the
// environment's balena-migrate.conf, and refuses an image that does not
// boot on the probed device.
func (env *environment) readConf(data []byte, p probe) error {
	if err := env.parseConf(data); err != nil {
		return err
	}
	image := env.image
	slug, ok := devicetype.SlugFromName(image)
	if !ok {
		return nil
	}
	if !p.device.Accepts(slug) {
		return &DeviceError{Class: devproto.ClassDeviceType, Msg: fmt.Sprintf("the image %s in %s is for %s, which does not boot on this %s (it takes %s)",
			image, env.path, slug, p.device.Name, strings.Join(p.device.Slugs, ", "))}
	}
	if env.slug == "" {
		env.slug = slug
	}
	return nil
}

// parseConf reads balena-migrate.conf through devproto, as stage 1 reads
// it: the same keys, defaults and booleans, so NO_FLASH left out means
// TRUE here too. A value stage 1 would refuse is refused.
func (env *environment) parseConf(data []byte) error {
	f, err := envfile.Parse(data)
	if err != nil {
		return usage.Errorf("%s in %s: %w", devproto.ConfName, env.path, err)
	}
	conf, err := devproto.ReadConf(f, "")
	if err != nil {
		return usage.Errorf("%s in %s: %w", devproto.ConfName, env.path, err)
	}
	env.noFlash, env.image = conf.NoFlash, conf.ImageName
	switch v, set := f.Get("NO_FLASH"); {
	case !set:
		env.noFlashSays = "leaves NO_FLASH out, which means TRUE"
	case strings.TrimSpace(v) == "":
		env.noFlashSays = "sets NO_FLASH empty, which means FALSE"
	default:
		env.noFlashSays = "sets NO_FLASH=" + v
	}
	return nil
}

// pickSubdir finds the sub-directory of root for the probed device: by
// device-type slug (preferred first), then by architecture. "" means root
// itself, when it holds a balena-migrate binary at its top.
func pickSubdir(root string, p probe) (sub, why string, err error) {
	for _, slug := range p.device.Slugs {
		if isEnvDir(filepath.Join(root, slug)) {
			return slug, fmt.Sprintf("sub-directory %s/ for this %s", slug, p.device.Name), nil
		}
	}
	for _, a := range []string{p.machine, archNames()[p.machine]} {
		if a != "" && isEnvDir(filepath.Join(root, a)) {
			return a, fmt.Sprintf("sub-directory %s/ for architecture %s", a, p.machine), nil
		}
	}
	if hasBinary(root) {
		return "", "", nil
	}
	return "", "", &DeviceError{Class: devproto.ClassDeviceType, Msg: fmt.Sprintf("no migration environment in %s fits this %s: add a sub-directory named %s (or after its architecture, %s)",
		root, p.device.Name, strings.Join(p.device.Slugs, " or "), p.machine)}
}

// isEnvDir reports whether dir is an environment: a directory with a
// balena-migrate binary at its top.
func isEnvDir(dir string) bool {
	st, err := os.Stat(dir)
	return err == nil && st.IsDir() && hasBinary(dir)
}

// hasBinary reports whether dir holds balena-migrate or balena-migrate-<arch>.
func hasBinary(dir string) bool {
	names, _ := filepath.Glob(filepath.Join(dir, "balena-migrate*"))
	for _, n := range names {
		if st, err := os.Stat(n); err == nil && st.Mode().IsRegular() && n != filepath.Join(dir, devproto.ConfName) {
			return true
		}
	}
	return false
}
