// Package proxy is the HTTP side of sessiongate: token extraction, the
// session check, identity headers, forwarding through httputil.ReverseProxy,
// error responses, and the self-service and admin endpoints.
package proxy

import (
	"encoding/json"
	"net/http"
)

// Error codes of rejection bodies. Clients script against them.
const (
	CodeMissingToken        = "missing_token"
	CodeInvalidToken        = "invalid_token"
	CodeSessionExpired      = "session_expired"
	CodeSessionRevoked      = "session_revoked"
	CodeStoreUnavailable    = "store_unavailable"
	CodeUpstreamUnavailable = "upstream_unavailable"
	CodeNotFound            = "not_found"
	CodeMethodNotAllowed    = "method_not_allowed"
	CodeBadRequest          = "bad_request"
	CodeUnauthorized        = "unauthorized"
	CodeForbidden           = "forbidden"
	CodeInternal            = "internal_error"
)

type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// writeError sends the JSON error shape {"error": code, "message": msg}.
// A 401 carries WWW-Authenticate as RFC 6750 section 3 describes: no error
// attribute when the request had no token, error="invalid_token" otherwise.
func writeError(w http.ResponseWriter, status int, code, message string) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if status == http.StatusUnauthorized {
		if code == CodeMissingToken {
			h.Set("WWW-Authenticate", `Bearer realm="sessiongate"`)
		} else {
			h.Set("WWW-Authenticate", `Bearer realm="sessiongate", error="invalid_token", error_description="`+message+`"`)
		}
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorBody{Error: code, Message: message})
}

// writeJSON sends v as a JSON body with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
