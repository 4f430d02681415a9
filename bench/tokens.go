package main

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// keys are the signing keys of one benchmark run, made fresh each time.
type keys struct {
	secret        string
	rsa           *rsa.PrivateKey
	publicKeyFile string
}

func newKeys(dir string) (*keys, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generate HMAC secret: %w", err)
	}
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate RSA key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("encode RSA public key: %w", err)
	}
	path := filepath.Join(dir, "jwt-public.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		return nil, fmt.Errorf("write RSA public key: %w", err)
	}
	return &keys{secret: hex.EncodeToString(raw), rsa: priv, publicKeyFile: path}, nil
}

// writeTokens writes n tokens, one a line, to path. Token i belongs to user
// prefix-i, so each token names its own session and its own user: the
// worst case for Redis memory, because every session then also carries a
// per-user index key.
func writeTokens(path string, n int, prefix string, method jwt.SigningMethod, key any) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create token file: %w", err)
	}
	w := bufio.NewWriter(f)
	now := time.Now()
	for i := range n {
		user := fmt.Sprintf("%s-%06d", prefix, i)
		claims := jwt.MapClaims{
			"sub":   user,
			"email": user + "@example.test",
			"iat":   now.Unix(),
			"exp":   now.Add(4 * time.Hour).Unix(),
			"jti":   fmt.Sprintf("%s-%d-%d", prefix, now.UnixNano(), i),
		}
		token, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			f.Close()
			return fmt.Errorf("sign token %d: %w", i, err)
		}
		w.WriteString(token)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write token file: %w", err)
	}
	return f.Close()
}

// readTokens reads a token file written by writeTokens.
func readTokens(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); line != "" {
			out = append(out, line)
		}
	}
	return out, sc.Err()
}
