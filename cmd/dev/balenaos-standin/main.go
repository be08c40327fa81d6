// Command balenaos-standin is what the balenaOS stand-in image
// (internal/testenv/balenaimg) runs on its first boot, after its init has
// mounted resin-boot and resin-data and brought up the network: it reads
// config.json as balenaOS does, reports what stage 2 left on resin-boot and
// resin-data, and reaches the balena API as the device's supervisor does
// first (internal/testenv/supervisor): GET /device/v3/<uuid>/state, then
// PATCH /device/v3/state, with the device's own API key, over TLS trusting
// config.json's balenaRootCA when the API is a self-signed openBalena.
// It reports the OS version it was built with. Every line it prints starts with
// "STANDIN"; the last is "STANDIN-ONLINE uuid=…" once the API accepted the
// report, or "STANDIN-FAILED: …".
package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fleetmig/balena-migrate/internal/testenv/supervisor"
)

func main() {
	boot := flag.String("boot", "/mnt/boot", "where resin-boot is mounted")
	data := flag.String("data", "/mnt/data", "where resin-data is mounted")
	host := flag.String("host-addr", "10.0.2.2", "the host's loopback as this machine reaches it")
	tries := flag.Int("tries", 30, "state report attempts, 2 s apart")
	osVersion := flag.String("os-version", supervisor.DefaultState.OSVersion, "the os_version to report")
	flag.Parse()
	st := supervisor.DefaultState
	st.OSVersion = *osVersion
	if err := run(*boot, *data, *host, *tries, st); err != nil {
		fmt.Println("STANDIN-FAILED:", err)
		os.Exit(1)
	}
}

// deviceConfig is the part of config.json a device needs to come online.
type deviceConfig struct {
	UUID         string `json:"uuid"`
	DeviceAPIKey string `json:"deviceApiKey"`
	APIEndpoint  string `json:"apiEndpoint"`
	DeviceType   string `json:"deviceType"`
	AppID        any    `json:"applicationId"`
	RootCA       string `json:"balenaRootCA"` // base64 PEM: a self-signed openBalena's CA
}

func run(boot, data, hostAddr string, tries int, st supervisor.State) error {
	raw, err := os.ReadFile(filepath.Join(boot, "config.json"))
	if err != nil {
		return fmt.Errorf("resin-boot has no config.json: %w", err)
	}
	var cfg deviceConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("config.json: %w", err)
	}
	if cfg.UUID == "" || cfg.DeviceAPIKey == "" || cfg.APIEndpoint == "" {
		return errors.New("config.json lacks uuid, deviceApiKey or apiEndpoint")
	}
	fmt.Printf("STANDIN config.json: uuid=%s deviceType=%s applicationId=%v apiEndpoint=%s\n",
		cfg.UUID, cfg.DeviceType, cfg.AppID, cfg.APIEndpoint)
	conns, _ := filepath.Glob(filepath.Join(boot, "system-connections", "*"))
	for i := range conns {
		conns[i] = filepath.Base(conns[i])
	}
	fmt.Printf("STANDIN system-connections: %d %s\n", len(conns), strings.Join(conns, " "))
	reportData(data)

	endpoint, err := reachable(cfg.APIEndpoint, hostAddr)
	if err != nil {
		return err
	}
	client, err := httpClient(cfg.RootCA)
	if err != nil {
		return err
	}
	return report(client, endpoint, cfg, tries, st)
}

// httpClient trusts config.json's balenaRootCA when there is one, as
// balenaOS does for a self-signed openBalena.
func httpClient(rootCA string) (*http.Client, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	if rootCA == "" {
		return client, nil
	}
	pemCA, err := base64.StdEncoding.DecodeString(rootCA)
	if err != nil {
		return nil, fmt.Errorf("config.json balenaRootCA is not base64: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCA) {
		return nil, errors.New("config.json balenaRootCA holds no PEM certificate")
	}
	fmt.Println("STANDIN trusting config.json's balenaRootCA")
	client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	return client, nil
}

// reportData prints what resin-data holds: the backup (its entries) and
// stage 2's log.
func reportData(data string) {
	entries, _ := os.ReadDir(data)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	fmt.Printf("STANDIN resin-data: %s\n", strings.Join(names, " "))
	files, err := backupEntries(filepath.Join(data, "backup.tgz"))
	switch {
	case errors.Is(err, os.ErrNotExist):
		fmt.Println("STANDIN backup: none")
	case err != nil:
		fmt.Printf("STANDIN backup: unreadable: %v\n", err)
	default:
		sort.Strings(files)
		fmt.Printf("STANDIN backup: backup.tgz %d entries: %s\n", len(files), strings.Join(files, " "))
	}
}

func backupEntries(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, nil
		}
		if err != nil {
			return names, err
		}
		names = append(names, h.Name)
	}
}

// reachable maps an API on the host's loopback (the fake API of a test) to
// the address the guest reaches it at.
func reachable(endpoint, hostAddr string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("apiEndpoint %q: %w", endpoint, err)
	}
	if h := u.Hostname(); h == "127.0.0.1" || h == "localhost" || h == "::1" {
		u.Host = net.JoinHostPort(hostAddr, u.Port())
		fmt.Printf("STANDIN the API is on the host's loopback: using %s\n", u.Host)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// report does the supervisor's first requests until the API accepts them.
func report(client *http.Client, endpoint string, cfg deviceConfig, tries int, st supervisor.State) error {
	var last error
	for i := 0; i < tries; i++ {
		if i > 0 {
			time.Sleep(2 * time.Second)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		last = supervisor.FirstContact(ctx, client, endpoint, cfg.UUID, cfg.DeviceAPIKey, st)
		cancel()
		if last == nil {
			fmt.Printf("STANDIN state GET and PATCH accepted (%s)\n", st.OSVersion)
			fmt.Printf("STANDIN-ONLINE uuid=%s\n", cfg.UUID)
			return nil
		}
		fmt.Printf("STANDIN state report: %v\n", last)
		var se *supervisor.Error
		if errors.As(last, &se) && (se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden) {
			break // the key is wrong; asking again will not change that
		}
	}
	return fmt.Errorf("state report to %s not accepted: %v", endpoint, last)
}
