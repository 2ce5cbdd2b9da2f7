package mar

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/airlock/airlock/internal/ocierr"
)

// sign returns the base64url HMAC-SHA256 of the parts under the server key.
func (s *Server) sign(parts ...string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(strings.Join(parts, "\n")))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *Server) validSig(sig string, parts ...string) bool {
	return subtle.ConstantTimeCompare([]byte(sig), []byte(s.sign(parts...))) == 1
}

// issueToken returns an anonymous pull token: "<expiry unix>.<hmac>".
func (s *Server) issueToken(now time.Time) string {
	exp := strconv.FormatInt(now.Add(s.cfg.TokenTTL).Unix(), 10)
	return exp + "." + s.sign("token", exp)
}

// authorized reports whether the request carries a valid, unexpired token.
func (s *Server) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	exp, sig, ok := strings.Cut(strings.TrimSpace(tok), ".")
	if !ok || !s.validSig(sig, "token", exp) {
		return false
	}
	unix, err := strconv.ParseInt(exp, 10, 64)
	return err == nil && time.Now().Unix() < unix
}

// challenge answers 401 with MAR's anonymous bearer challenge.
func (s *Server) challenge(w http.ResponseWriter, r *http.Request, rt route) {
	h := fmt.Sprintf(`Bearer realm="http://%s/oauth2/token",service="%s"`, r.Host, r.Host)
	if rt.repo != "" && !rt.badRef {
		h += fmt.Sprintf(`,scope="repository:%s:pull"`, rt.repo)
	}
	w.Header().Set("Www-Authenticate", h)
	_ = ocierr.Write(w, r, 0, errcode.ErrorCodeUnauthorized.WithMessage("authentication required"))
}

// token serves GET|POST /oauth2/token: any anonymous caller gets a token.
func (s *Server) token(w http.ResponseWriter, r *http.Request, _ route) error {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return unsupported(w)
	}
	now := time.Now()
	tok := s.issueToken(now)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(map[string]any{
		"access_token": tok,
		"token":        tok,
		"expires_in":   int(s.cfg.TokenTTL.Seconds()),
		"issued_at":    now.UTC().Format(time.RFC3339),
	})
}
