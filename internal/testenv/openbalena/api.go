package openbalena

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// launcher starts the stock server and then loads the device-type
// contracts at once (the server's own job does it every five minutes, the
// first time only after five minutes). Loading from GitHub fails here, so
// the contracts come from the snapshot under $TMPDIR/contracts.
const launcher = `const api = process.env.OBA_DIR;
const port = process.env.PORT;
await import(api + '/index.js');
for (let i = 0; i < 1200; i++) {
	try { if ((await fetch('http://127.0.0.1:' + port + '/ping')).ok) break; } catch {}
	await new Promise((r) => setTimeout(r, 250));
}
const { synchronizeContracts, getContractRepos } = await import(api + '/src/features/contracts/index.js');
await synchronizeContracts(getContractRepos());
console.log('OPENBALENA-CONTRACTS-LOADED');
`

// apiEnv is the server's environment: its required settings, secrets made
// for this instance, and the heartbeat timings of opts.
func (s *Server) apiEnv(apiHost string, opts Options, apiPort, pgPort, redisPort int, s3URL string) ([]string, error) {
	tmp := filepath.Join(s.dir, "tmp")
	// The API globs $TMPDIR/contracts/<repo>/contracts/<type>/**.
	if err := os.MkdirAll(filepath.Join(tmp, "contracts"), 0o755); err != nil {
		return nil, err
	}
	// A copy, not a link: the API drops contract assets whose real path
	// lies outside the contract's directory as it names it.
	cp := exec.Command("cp", "-a", filepath.Join(CacheDir(), "contracts"), filepath.Join(tmp, "contracts", "balena-io-contracts"))
	if out, err := cp.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("copying the contracts: %v: %s", err, out)
	}
	tokenKey, tokenPub, kid, err := tokenKeys()
	if err != nil {
		return nil, err
	}
	vpnCA, err := selfSignedCA()
	if err != nil {
		return nil, err
	}
	env := []string{
		"PATH=" + filepath.Join(CacheDir(), "node", "bin") + ":/usr/bin:/bin",
		"HOME=" + s.dir,
		"TMPDIR=" + tmp,
		"OBA_DIR=" + filepath.Join(CacheDir(), "api"),
		"API_HOST=" + apiHost,
		"PORT=" + strconv.Itoa(apiPort),
		"NUM_WORKERS=1",
		"NODE_ENV=production",
		"PRODUCTION_MODE=true",
		"TRUST_PROXY=true",
		fmt.Sprintf("DATABASE_URL=postgres://docker:docker@127.0.0.1:%d/resin", pgPort),
		fmt.Sprintf("REDIS_HOST=127.0.0.1:%d", redisPort),
		"REDIS_IS_CLUSTER=false",
		"JSON_WEB_TOKEN_SECRET=" + randomHex(32),
		"JSON_WEB_TOKEN_EXPIRY_MINUTES=1440",
		"COOKIE_SESSION_SECRET=" + randomHex(32),
		"API_VPN_SERVICE_API_KEY=" + randomHex(16),
		"VPN_SERVICE_API_KEY=" + randomHex(16),
		"VPN_HOST=vpn.openbalena.test",
		"VPN_PORT=443",
		"DELTA_HOST=delta.openbalena.test",
		"REGISTRY2_HOST=registry.openbalena.test",
		"MIXPANEL_TOKEN=__unused__",
		"DEVICE_CONFIG_OPENVPN_CA=" + base64.StdEncoding.EncodeToString(vpnCA),
		"IMAGE_STORAGE_ENDPOINT=" + s3URL,
		"IMAGE_STORAGE_BUCKET=" + s3Bucket,
		"IMAGE_STORAGE_PREFIX=" + s3Prefix,
		"IMAGE_STORAGE_FORCE_PATH_STYLE=true",
		"TOKEN_AUTH_BUILDER_TOKEN=" + randomHex(16),
		"TOKEN_AUTH_CERT_ISSUER=api.openbalena.test",
		"TOKEN_AUTH_CERT_KEY=" + base64.StdEncoding.EncodeToString(tokenKey),
		"TOKEN_AUTH_CERT_PUB=" + base64.StdEncoding.EncodeToString(tokenPub),
		"TOKEN_AUTH_CERT_KID=" + base64.StdEncoding.EncodeToString([]byte(kid)),
		"TOKEN_AUTH_JWT_ALGO=ES256",
		"SUPERUSER_EMAIL=" + adminEmail,
		"SUPERUSER_PASSWORD=" + adminPassword,
		"DEFAULT_SUPERVISOR_POLL_INTERVAL=" + strconv.FormatInt(opts.PollInterval.Milliseconds(), 10),
		"API_HEARTBEAT_STATE_TIMEOUT_SECONDS=" + strconv.Itoa(int(opts.HeartbeatTimeout.Seconds())),
	}
	// NODE_EXTRA_CA_CERTS is left out (but for a TLS front's own CA): the
	// API embeds that file in every config.json it generates.
	return env, nil
}

// startAPI runs the server with the swc loader (production runs the
// TypeScript sources directly; there is no build step).
func (s *Server) startAPI(env []string, log io.Writer) error {
	start := filepath.Join(s.dir, "start.mjs")
	if err := os.WriteFile(start, []byte(launcher), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(CacheDir(), "node", "bin", "node"), "--enable-source-maps", "--no-warnings",
		"--loader", "@swc-node/register/esm-register", start)
	cmd.Dir = filepath.Join(CacheDir(), "api")
	cmd.Env = env
	if err := s.spawn(cmd, log); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	return nil
}

// tokenKeys makes the EC key the API signs registry tokens with: private
// key and public key as PEM, and its key id in the docker/libtrust form
// (base32 of the first 30 bytes of the SHA-256 of the DER public key, in
// twelve groups of four separated by colons).
func tokenKeys() (key, pub []byte, kid string, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, "", err
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, nil, "", err
	}
	spki, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return nil, nil, "", err
	}
	sum := sha256.Sum256(spki)
	b32 := base32.StdEncoding.EncodeToString(sum[:30])[:48]
	var groups []string
	for i := 0; i < len(b32); i += 4 {
		groups = append(groups, b32[i:i+4])
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}), strings.Join(groups, ":"), nil
}

// selfSignedCA is the VPN CA certificate generated configs carry (no VPN
// runs; the API only requires one).
func selfSignedCA() ([]byte, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "openbalena-test-vpn-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour * 365),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
