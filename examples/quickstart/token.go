package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Sample identity of the minted token.
const (
	demoUserID    = "demo-user"
	demoUserEmail = "demo-user@example.com"
	tokenLifetime = time.Hour
)

// newSecret returns a random HMAC secret of 32 bytes, base64url-encoded.
// A new one per run means that no token minted by an earlier run, nor one
// from anywhere else, is accepted.
func newSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate HMAC secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// mintToken signs the sample token with HS256 and secret: sub demoUserID,
// email demoUserEmail, iat now and exp an hour later. In production your
// login issues the tokens, and sessiongate only verifies them.
func mintToken(secret string, now time.Time) (string, error) {
	claims := jwt.MapClaims{
		"sub":   demoUserID,
		"email": demoUserEmail,
		"iat":   now.Unix(),
		"exp":   now.Add(tokenLifetime).Unix(),
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		return "", fmt.Errorf("sign sample token: %w", err)
	}
	return token, nil
}
