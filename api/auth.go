package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// Role is the permission an endpoint needs.
type Role int

// Read endpoints query and describe data; write endpoints change it.
const (
	RoleRead Role = iota
	RoleWrite
)

// Credentials accept a bearer token and/or HTTP basic auth. The zero value
// accepts every request (no authentication for that role).
type Credentials struct {
	BearerToken string
	Username    string
	Password    string
}

// Enabled reports whether these credentials require anything.
func (c Credentials) Enabled() bool { return c.BearerToken != "" || c.Username != "" }

// Auth holds the credentials of each role. The roles are separate: write
// credentials do not grant read and read credentials never grant write, so a
// model server's token cannot read and a dashboard's cannot write.
type Auth struct {
	Read  Credentials
	Write Credentials
}

// eq compares in constant time (over fixed-length digests, so the length
// leaks nothing either).
func eq(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

func (c Credentials) allows(r *http.Request) bool {
	if !c.Enabled() {
		return true
	}
	h := r.Header.Get("Authorization")
	if c.BearerToken != "" {
		if tok, ok := strings.CutPrefix(h, "Bearer "); ok && eq(strings.TrimSpace(tok), c.BearerToken) {
			return true
		}
	}
	if c.Username != "" {
		if u, p, ok := r.BasicAuth(); ok {
			// Evaluate both so timing does not tell which one was wrong.
			uok, pok := eq(u, c.Username), eq(p, c.Password)
			if uok && pok {
				return true
			}
		}
	}
	return false
}

func (a *API) auth(role Role, h http.Handler) http.Handler {
	c := a.opts.Auth.Read
	if role == RoleWrite {
		c = a.opts.Auth.Write
	}
	if !c.Enabled() {
		return h
	}
	challenge := `Bearer realm="evalstore"`
	if c.BearerToken == "" {
		challenge = `Basic realm="evalstore"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !c.allows(r) {
			w.Header().Set("WWW-Authenticate", challenge)
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
