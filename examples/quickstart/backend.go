package main

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
)

// spoofedUserID is the X-User-Id value that the banner's spoofing step
// sends. The sample backend reports whether it arrived, and sessiongate
// must have removed it.
const spoofedUserID = "spoofed-by-client"

// echo is the JSON body that the sample backend returns: the identity
// headers that sessiongate forwarded, as the backend received them.
type echo struct {
	Message string `json:"message"`
	Method  string `json:"method"`
	Path    string `json:"path"`
	// UserID, UserEmail and SessionID are the first values of X-User-Id,
	// X-User-Email and X-Session-Id, or empty when the header is missing.
	UserID    string `json:"x_user_id"`
	UserEmail string `json:"x_user_email"`
	SessionID string `json:"x_session_id"`
	// UserIDValues lists every X-User-Id value received, under any
	// spelling of the name (X-User-Id, x-user-id, X_User_Id), because a
	// PHP or CGI backend reads all of them as HTTP_X_USER_ID.
	UserIDValues []string `json:"x_user_id_values"`
	// SpoofedUserIDArrived is true when spoofedUserID is among
	// UserIDValues, which means a client-sent X-User-Id got through.
	SpoofedUserIDArrived bool `json:"spoofed_x_user_id_arrived"`
}

// newSampleBackend returns the server of the sample backend, which returns
// an echo for every path and method. It exists only for trying sessiongate
// out. A real backend reads the same headers and must be reachable only
// through sessiongate, because it trusts them.
func newSampleBackend(log *zap.Logger) *http.Server {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		values := headerValues(r.Header, "x-user-id")
		body := echo{
			Message:              "hello from the sample backend",
			Method:               r.Method,
			Path:                 r.URL.Path,
			UserID:               r.Header.Get("X-User-Id"),
			UserEmail:            r.Header.Get("X-User-Email"),
			SessionID:            r.Header.Get("X-Session-Id"),
			UserIDValues:         values,
			SpoofedUserIDArrived: slices.Contains(values, spoofedUserID),
		}
		if body.SpoofedUserIDArrived {
			log.Error("client-sent X-User-Id reached the backend", zap.Strings("values", values))
		}

		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(body)
	})
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          zap.NewStdLog(log),
	}
}

// headerValues returns the values of every header whose name equals name
// when letter case is ignored and "_" is read as "-". name is lower case
// with "-". The result is never nil, so that it encodes as [].
func headerValues(h http.Header, name string) []string {
	values := []string{}
	for key, vs := range h {
		if strings.ReplaceAll(strings.ToLower(key), "_", "-") == name {
			values = append(values, vs...)
		}
	}
	return values
}
