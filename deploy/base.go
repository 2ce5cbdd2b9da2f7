package deploy

import (
	"github.com/airlock/airlock/rules"
	"github.com/airlock/airlock/upstream"
)

// SetBase replaces the configuration file's rules and credential sets (a
// configuration reload): the effective rule set is rebuilt and swapped
// into the engine. If the new base does not make a valid set with the
// bound registry's rules, it returns the error and nothing changes.
func (s *Service) SetBase(rs []rules.Rule, creds map[string]upstream.Credentials) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	oldRules, oldCreds := s.bind.BaseRules, s.bind.BaseCredentials
	s.bind.BaseRules, s.bind.BaseCredentials = rs, creds
	set, c, err := s.effective(s.st)
	if err != nil {
		s.bind.BaseRules, s.bind.BaseCredentials = oldRules, oldCreds
		return err
	}
	s.apply(set, c)
	return nil
}
