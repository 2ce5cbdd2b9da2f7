package acrauth

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/airlock/airlock/registry/auth"
	"go.uber.org/zap"
)

// Handler serves ACR's token endpoints; mount it at /oauth2/ without auth:
//
//   - GET /oauth2/token?service=&scope=… with Basic credentials (or none,
//     for anonymous pull) → {"access_token": …}
//   - POST /oauth2/token, form grant_type=refresh_token (refresh_token=…)
//     or grant_type=password (username=, password=; access_type=offline
//     adds a refresh token) → {"access_token": …}
//   - POST /oauth2/exchange, form grant_type=password or refresh_token, or
//     Basic credentials → {"refresh_token": …}
//
// A token grants the requested scopes the subject is allowed, and nothing
// else (possibly nothing).
//
// While the signing key cannot be loaded (LoadKey) it answers 503.
func (s *Service) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.key(r.Context()); err != nil {
			s.log.Warn("token endpoint: no signing key", zap.Error(err))
			w.Header().Set("Retry-After", "1")
			writeErr(w, http.StatusServiceUnavailable, "UNAVAILABLE", "the token signing key cannot be read yet; retry shortly")
			return
		}
		switch {
		case r.URL.Path == "/oauth2/token" && r.Method == http.MethodGet:
			s.tokenGET(w, r)
		case r.URL.Path == "/oauth2/token" && r.Method == http.MethodPost:
			s.tokenPOST(w, r)
		case r.URL.Path == "/oauth2/exchange" && r.Method == http.MethodPost:
			s.exchange(w, r)
		case r.URL.Path == "/oauth2/token" || r.URL.Path == "/oauth2/exchange":
			writeErr(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "method not allowed")
		default:
			writeErr(w, http.StatusNotFound, "NOT_FOUND", "unknown token endpoint")
		}
	})
}

const maxForm = 64 << 10

func (s *Service) tokenGET(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var p *principal
	if r.Header.Get("Authorization") != "" {
		name, pass, ok := r.BasicAuth()
		if !ok {
			s.unauthorized(w, r)
			return
		}
		var err error
		if p, err = s.login(r.Context(), name, pass, s.serviceParam(r, q.Get("service"))); err != nil {
			s.unauthorized(w, r)
			return
		}
	} else if len(s.anon) == 0 {
		s.unauthorized(w, r)
		return
	}
	s.grantAccess(w, r, p, q["scope"], q.Get("service"), false)
}

func (s *Service) tokenPOST(w http.ResponseWriter, r *http.Request) {
	f, _, p, ok := s.formLogin(w, r, false, "grant_type must be refresh_token or password")
	if !ok {
		return
	}
	s.grantAccess(w, r, p, f["scope"], f.Get("service"), f.Get("access_type") == "offline")
}

func (s *Service) exchange(w http.ResponseWriter, r *http.Request) {
	_, service, p, ok := s.formLogin(w, r, true, "grant_type must be password or refresh_token (AAD access tokens are not supported)")
	if !ok {
		return
	}
	rt, err := s.signer.Load().issue(s.now(), p.name, service, grantRefresh, s.refreshTTL, nil)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "UNKNOWN", "could not sign a token")
		return
	}
	s.log.Info("refresh token issued", zap.String("subject", p.name))
	writeJSON(w, map[string]any{"refresh_token": rt})
}

// formLogin reads the form of a POST to a token endpoint and logs in its
// subject for service (the form's, else this registry's) by grant_type:
// refresh_token or password; with basic, Basic credentials when grant_type
// is neither. Otherwise it answers the request (400 with unsupported for
// an unknown grant type, 401 for bad credentials) and returns ok false.
func (s *Service) formLogin(w http.ResponseWriter, r *http.Request, basic bool, unsupported string) (f url.Values, service string, p *principal, ok bool) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		writeErr(w, http.StatusBadRequest, "invalid_request", "the form could not be read")
		return nil, "", nil, false
	}
	f = r.PostForm
	service = s.serviceParam(r, f.Get("service"))
	var err error
	switch gt := f.Get("grant_type"); {
	case gt == "refresh_token":
		p, err = s.refresh(f.Get("refresh_token"), service)
	case gt == "password":
		p, err = s.login(r.Context(), f.Get("username"), f.Get("password"), service)
	case basic && r.Header.Get("Authorization") != "":
		name, pass, ok := r.BasicAuth()
		if !ok {
			err = auth.ErrUnauthenticated
			break
		}
		p, err = s.login(r.Context(), name, pass, service)
	default:
		writeErr(w, http.StatusBadRequest, "unsupported_grant_type", unsupported)
		return nil, "", nil, false
	}
	if err != nil {
		s.unauthorized(w, r)
		return nil, "", nil, false
	}
	return f, service, p, true
}

func (s *Service) refresh(tok, service string) (*principal, error) {
	c, err := s.signer.Load().verify(tok, grantRefresh, service, s.now)
	if err != nil {
		return nil, err
	}
	p := s.principals[c.Subject]
	if p == nil {
		return nil, errors.New("the refresh token's subject no longer exists")
	}
	return p, nil
}

// serviceParam is the audience a token is asked for: the service
// parameter, else this registry's service name.
func (s *Service) serviceParam(r *http.Request, param string) string {
	if param != "" {
		return param
	}
	return s.serviceFor(r)
}

const maxScopes = 32

// grantAccess issues an access token for the requested scopes p (nil:
// anonymous) is allowed.
func (s *Service) grantAccess(w http.ResponseWriter, r *http.Request, p *principal, scopes []string, service string, offline bool) {
	service = s.serviceParam(r, service)
	var access []accessEntry
	n := 0
	for _, sc := range scopes {
		for _, one := range strings.Fields(sc) {
			if n++; n > maxScopes {
				writeErr(w, http.StatusBadRequest, "invalid_scope", "too many scopes")
				return
			}
			if e, ok := s.allowed(p, one); ok {
				access = append(access, e)
			}
		}
	}
	now := s.now()
	sub := ""
	if p != nil {
		sub = p.name
	}
	tok, err := s.signer.Load().issue(now, sub, service, grantAccess, s.accessTTL, access)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "UNKNOWN", "could not sign a token")
		return
	}
	out := map[string]any{
		"access_token": tok,
		"token":        tok, // docker's name for it
		"expires_in":   int(s.accessTTL.Seconds()),
		"issued_at":    now.UTC().Format(time.RFC3339),
	}
	if offline && p != nil {
		rt, err := s.signer.Load().issue(now, sub, service, grantRefresh, s.refreshTTL, nil)
		if err != nil {
			writeErr(w, http.StatusInternalServerError, "UNKNOWN", "could not sign a token")
			return
		}
		out["refresh_token"] = rt
	}
	s.log.Debug("access token issued", zap.String("subject", sub), zap.Int("scopes", len(access)))
	writeJSON(w, out)
}

// allowed parses one "type:name:actions" scope and keeps the actions p may
// perform.
func (s *Service) allowed(p *principal, scope string) (accessEntry, bool) {
	typ, rest, ok1 := strings.Cut(scope, ":")
	i := strings.LastIndexByte(rest, ':')
	if !ok1 || i <= 0 || len(scope) > 512 {
		return accessEntry{}, false
	}
	e := accessEntry{Type: typ, Name: rest[:i]}
	for _, a := range strings.Split(rest[i+1:], ",") {
		if a != "" && s.may(p, auth.Access{Type: typ, Name: e.Name, Action: a}) {
			e.Actions = append(e.Actions, a)
		}
	}
	return e, len(e.Actions) > 0
}

func (s *Service) unauthorized(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Www-Authenticate", s.Challenge(r, nil))
	writeErr(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required, visit https://aka.ms/acr/authorization for more information.")
}

func writeJSON(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// writeErr writes an error in the OCI shape, which ACR's endpoints use too.
func writeErr(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}
