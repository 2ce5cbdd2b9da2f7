package deploy

import (
	"context"
	"strings"

	"github.com/airlock/airlock/rules"
)

// CreateCacheRule adds a rule to a registry. For the bound registry the
// rule is served from the next request on; it is refused if it conflicts
// with the configuration file's rules or captures a repository that holds
// pushed content (TargetRepositoryPrefixMatchesExistingRegistries).
func (s *Service) CreateCacheRule(ctx context.Context, registry string, r CacheRule) (CacheRule, error) {
	r.Registry, r.FromConfig = "", false
	var out CacheRule
	err := s.update(ctx, func(st *State) error {
		reg, err := lookupRegistry(st, registry)
		if err != nil {
			return err
		}
		set, err := ruleSet(reg)
		if err != nil {
			return err
		}
		if _, err := set.With(r.Rule); err != nil {
			return ruleError(err)
		}
		if err := s.checkCredentialSet(reg, r.CredentialSet); err != nil {
			return err
		}
		if reg.Name == s.bind.Registry && s.bind.Repos != nil {
			pushed, err := s.bind.Repos.PushedRepos(ctx)
			if err != nil {
				return err
			}
			if err := rules.CheckExisting(r.Rule, pushed); err != nil {
				return ruleError(err)
			}
		}
		reg.CacheRules = append(reg.CacheRules, r)
		out = r
		out.Registry = reg.Name
		return nil
	})
	return out, err
}

// CacheRules lists a registry's rules (for the bound registry, with the
// configuration file's, marked fromConfig).
func (s *Service) CacheRules(ctx context.Context, registry string) ([]CacheRule, error) {
	return viewed(ctx, s, func(st *State) ([]CacheRule, error) {
		reg, err := lookupRegistry(st, registry)
		if err != nil {
			return nil, err
		}
		return s.rulesOf(reg), nil
	})
}

// CacheRule returns one rule.
func (s *Service) CacheRule(ctx context.Context, registry, name string) (CacheRule, error) {
	rs, err := s.CacheRules(ctx, registry)
	if err != nil {
		return CacheRule{}, err
	}
	for _, r := range rs {
		if strings.EqualFold(r.Name, name) {
			return r, nil
		}
	}
	return CacheRule{}, notFound("cache rule %s not found in registry %s", name, registry)
}

// UpdateCacheRule changes a rule's credential set (and tag TTL and tag
// listing, if given).
// Source and target cannot change, as in ACR (CacheRuleImmutable).
func (s *Service) UpdateCacheRule(ctx context.Context, registry string, r CacheRule) (CacheRule, error) {
	var out CacheRule
	err := s.update(ctx, func(st *State) error {
		reg, err := lookupRegistry(st, registry)
		if err != nil {
			return err
		}
		if err := s.ownRule(reg, r.Name); err != nil {
			return err
		}
		set, err := ruleSet(reg)
		if err != nil {
			return err
		}
		next, err := set.Update(r.Rule)
		if err != nil {
			return ruleError(err)
		}
		if err := s.checkCredentialSet(reg, r.CredentialSet); err != nil {
			return err
		}
		updated, _ := next.Get(r.Name)
		for i := range reg.CacheRules {
			if strings.EqualFold(reg.CacheRules[i].Name, r.Name) {
				reg.CacheRules[i] = CacheRule{Rule: updated}
			}
		}
		out = CacheRule{Rule: updated}
		out.Registry = reg.Name
		return nil
	})
	return out, err
}

// DeleteCacheRule deletes a rule. Content it cached stays pullable.
func (s *Service) DeleteCacheRule(ctx context.Context, registry, name string) error {
	return s.update(ctx, func(st *State) error {
		reg, err := lookupRegistry(st, registry)
		if err != nil {
			return err
		}
		if err := s.ownRule(reg, name); err != nil {
			return err
		}
		keep := reg.CacheRules[:0]
		for _, r := range reg.CacheRules {
			if !strings.EqualFold(r.Name, name) {
				keep = append(keep, r)
			}
		}
		reg.CacheRules = keep
		return nil
	})
}

// ownRule refuses a rule that does not exist, or exists only in the
// configuration file.
func (s *Service) ownRule(reg *Registry, name string) error {
	for _, r := range reg.CacheRules {
		if strings.EqualFold(r.Name, name) {
			return nil
		}
	}
	if reg.Name == s.bind.Registry {
		for _, b := range s.bind.BaseRules {
			if strings.EqualFold(b.Name, name) {
				return invalid(CodeConfigRule, "cache rule %s is defined in the configuration file: change it there", name)
			}
		}
	}
	return ruleError(&rules.ValidationError{Rule: name, Code: rules.CodeNotFound, Reason: "no cache rule with this name in registry " + reg.Name})
}

func (s *Service) checkCredentialSet(reg *Registry, name string) error {
	if name == "" {
		return nil
	}
	for _, cs := range reg.CredentialSets {
		if cs.Name == name {
			return nil
		}
	}
	if reg.Name == s.bind.Registry {
		if _, ok := s.bind.BaseCredentials[name]; ok {
			return nil
		}
	}
	return invalid(CodeCredentialSetNotFound, "credential set %q does not exist in registry %s", name, reg.Name)
}

func ruleSet(reg *Registry) (*rules.Set, error) {
	rs := make([]rules.Rule, 0, len(reg.CacheRules))
	for _, r := range reg.CacheRules {
		rs = append(rs, r.Rule)
	}
	set, err := rules.NewSet(rs)
	if err != nil {
		return nil, ruleError(err)
	}
	return set, nil
}

// CreateCredentialSet adds a credential set to a registry.
func (s *Service) CreateCredentialSet(ctx context.Context, registry string, cs CredentialSet) (CredentialSet, error) {
	if !resourceNameRE.MatchString(cs.Name) || cs.Username == "" {
		return CredentialSet{}, invalid(CodeInvalidParameter, "a credential set needs a name (letters, digits, -, _, .) and a username")
	}
	if cs.LoginServer != "" && !strings.Contains(cs.LoginServer, ".") && !strings.Contains(cs.LoginServer, ":") {
		return CredentialSet{}, invalid(CodeInvalidParameter, "login server %q must be a registry host such as docker.io", cs.LoginServer)
	}
	err := s.update(ctx, func(st *State) error {
		reg, err := lookupRegistry(st, registry)
		if err != nil {
			return err
		}
		for _, x := range reg.CredentialSets {
			if x.Name == cs.Name {
				return conflict(CodeAlreadyExists, "credential set %s already exists in registry %s", cs.Name, reg.Name)
			}
		}
		if reg.Name == s.bind.Registry {
			if _, err := resolve(cs); err != nil {
				return err
			}
		}
		reg.CredentialSets = append(reg.CredentialSets, cs)
		return nil
	})
	return redact(cs), err
}

// CredentialSets lists a registry's credential sets, without passwords.
func (s *Service) CredentialSets(ctx context.Context, registry string) ([]CredentialSet, error) {
	info, err := s.Registry(ctx, registry)
	if err != nil {
		return nil, err
	}
	return info.CredentialSets, nil
}

// DeleteCredentialSet deletes a credential set no rule uses.
func (s *Service) DeleteCredentialSet(ctx context.Context, registry, name string) error {
	return s.update(ctx, func(st *State) error {
		reg, err := lookupRegistry(st, registry)
		if err != nil {
			return err
		}
		for _, r := range reg.CacheRules {
			if r.CredentialSet == name {
				return conflict(CodeInUse, "credential set %s is used by cache rule %s", name, r.Name)
			}
		}
		keep := reg.CredentialSets[:0]
		found := false
		for _, x := range reg.CredentialSets {
			if x.Name == name {
				found = true
				continue
			}
			keep = append(keep, x)
		}
		if !found {
			return notFound("credential set %s not found in registry %s", name, reg.Name)
		}
		reg.CredentialSets = keep
		return nil
	})
}
