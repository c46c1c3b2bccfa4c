// Package apierror writes the error bodies of signet's HTTP APIs.
//
// Fulcio v2 and Rekor v2 are gRPC services exposed through grpc-gateway, so
// their clients (cosign, sigstore-go, sigstore-js) expect errors shaped as a
// google.rpc.Status in JSON: {"code": <grpc code>, "message": "...", "details": []}.
// Every signet service answers errors in that shape so the message a client
// prints is the one we wrote.
package apierror

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
)

// Body is the JSON error body, a google.rpc.Status.
type Body struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Details []any  `json:"details"`
}

// grpcCode maps an HTTP status to the gRPC code grpc-gateway would have used
// for it, so gRPC-aware clients classify the failure the same way.
func grpcCode(status int) int {
	switch status {
	case http.StatusBadRequest:
		return 3 // INVALID_ARGUMENT
	case http.StatusUnauthorized:
		return 16 // UNAUTHENTICATED
	case http.StatusForbidden:
		return 7 // PERMISSION_DENIED
	case http.StatusNotFound:
		return 5 // NOT_FOUND
	case http.StatusConflict:
		return 6 // ALREADY_EXISTS
	case http.StatusRequestEntityTooLarge:
		return 11 // OUT_OF_RANGE
	case http.StatusUnsupportedMediaType:
		return 3 // INVALID_ARGUMENT
	case http.StatusTooManyRequests:
		return 8 // RESOURCE_EXHAUSTED
	case http.StatusNotImplemented, http.StatusMethodNotAllowed:
		return 12 // UNIMPLEMENTED
	case http.StatusServiceUnavailable:
		return 14 // UNAVAILABLE
	case http.StatusGatewayTimeout:
		return 4 // DEADLINE_EXCEEDED
	default:
		if status >= 500 {
			return 13 // INTERNAL
		}
		return 2 // UNKNOWN
	}
}

// Write answers with status and a message that names the cause and, where
// there is one, what the caller should do about it.
func Write(w http.ResponseWriter, status int, format string, args ...any) {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(Body{Code: grpcCode(status), Message: msg, Details: []any{}})
}

// JSONBody reports whether r says its body is JSON, as Fulcio, Rekor and
// signet clients send it; otherwise it answers 415 naming the type to send.
// A body of another declared type is refused before it is read.
func JSONBody(w http.ResponseWriter, r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == "application/json" {
		return true
	}
	if ct == "" {
		ct = "none"
	}
	Write(w, http.StatusUnsupportedMediaType, "Content-Type is %s; send the request body as application/json", ct)
	return false
}
