package main

import (
	"flag"
	"net/url"

	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/internal/units"
	"github.com/airlock/airlock/rules"
)

// acrCommands is `airlock acr`: emulated Azure container registries, in
// the style of `az acr`.
func acrCommands() group {
	return group{
		"create":           acrCreate().command("acr create"),
		"show":             acrShow().command("acr show"),
		"list":             acrList().command("acr list"),
		"delete":           acrDelete().command("acr delete"),
		"cache":            {"cache rules: create|list|show|update|delete", cacheCommands().run("acr cache")},
		"credential-set":   {"credential sets: create|list|delete", credsetCommands().run("acr credential-set")},
		"private-endpoint": {"private endpoints: create|list|delete", endpointCommands().run("acr private-endpoint")},
		"dns":              {"A records in privatelink.azurecr.io: list|set|delete", dnsCommands().run("acr dns")},
	}
}

func acrCreate() op {
	return op{
		summary: "create a bring-your-own registry (add rule aks-managed-mcr and a private endpoint before a cluster uses it)",
		usage:   "--name NAME [--resource-group GROUP] [--location REGION]",
		setup: func(fs *flag.FlagSet) func() (call, error) {
			name := nameFlag(fs, "registry name: 5-50 lowercase letters and digits")
			group := fs.String("resource-group", "", "resource group (default airlock)")
			fs.StringVar(group, "g", "", "short for --resource-group")
			loc := fs.String("location", "", "region (default: the server's control.region)")
			fs.StringVar(loc, "l", "", "short for --location")
			return func() (call, error) {
				return call{method: "POST", path: "/registries", body: deploy.RegistrySpec{Name: *name, ResourceGroup: *group, Location: *loc}},
					required("name", *name)
			}
		},
	}
}

func acrShow() op {
	return op{
		summary: "show a registry with its rules, credential sets, private endpoints and DNS records",
		usage:   "--name NAME|ID",
		setup: func(fs *flag.FlagSet) func() (call, error) {
			name := nameFlag(fs, "registry name or resource ID")
			return func() (call, error) {
				return call{method: "GET", path: "/registries/" + esc(registryName(*name))}, required("name", *name)
			}
		},
	}
}

func acrList() op {
	return op{
		summary: "list registries",
		setup: func(fs *flag.FlagSet) func() (call, error) {
			return func() (call, error) { return call{method: "GET", path: "/registries"}, nil }
		},
	}
}

func acrDelete() op {
	return op{
		summary: "delete a registry (an AKS-managed one is recreated by reconcile)",
		usage:   "--name NAME|ID",
		setup: func(fs *flag.FlagSet) func() (call, error) {
			name := nameFlag(fs, "registry name or resource ID")
			return func() (call, error) {
				return call{method: "DELETE", path: "/registries/" + esc(registryName(*name))}, required("name", *name)
			}
		},
	}
}

func cacheCommands() group {
	rulePath := func(reg, name string) string {
		return "/registries/" + esc(registryName(reg)) + "/cacheRules/" + esc(name)
	}
	return group{
		"create": op{
			summary: "create a cache rule; on the served registry its target is pullable at once",
			usage:   "--registry R --name N --source-repo HOST/REPO[/*] --target-repo REPO[/*] [--cred-set C] [--tag-ttl 5m]",
			setup: func(fs *flag.FlagSet) func() (call, error) {
				reg, name := registryFlag(fs), nameFlag(fs, "rule name: 5-50 letters, digits, hyphens")
				src := fs.String("source-repo", "", "upstream repository with its host, e.g. mcr.microsoft.com/* or docker.io/library/nginx")
				tgt := fs.String("target-repo", "", "local repository or namespace, e.g. aks-managed-repository/*")
				cred := fs.String("cred-set", "", "credential set for the upstream")
				ttl := fs.Duration("tag-ttl", 0, "how long a tag is served before revalidation (airlock extension; default 5m)")
				return func() (call, error) {
					if err := required("registry", *reg, "name", *name, "source-repo", *src, "target-repo", *tgt); err != nil {
						return call{}, err
					}
					r := deploy.CacheRule{Rule: rules.Rule{Name: *name, Source: *src, Target: *tgt, CredentialSet: *cred, TagTTL: units.Duration(*ttl)}}
					return call{method: "POST", path: "/registries/" + esc(registryName(*reg)) + "/cacheRules", body: r}, nil
				}
			},
		}.command("acr cache create"),
		"list": op{
			summary: "list a registry's cache rules (the served registry's include the configuration file's, fromConfig)",
			usage:   "--registry R",
			setup: func(fs *flag.FlagSet) func() (call, error) {
				reg := registryFlag(fs)
				return func() (call, error) {
					return call{method: "GET", path: "/registries/" + esc(registryName(*reg)) + "/cacheRules"}, required("registry", *reg)
				}
			},
		}.command("acr cache list"),
		"show": op{
			summary: "show a cache rule",
			usage:   "--registry R --name N",
			setup: func(fs *flag.FlagSet) func() (call, error) {
				reg, name := registryFlag(fs), nameFlag(fs, "rule name")
				return func() (call, error) {
					return call{method: "GET", path: rulePath(*reg, *name)}, required("registry", *reg, "name", *name)
				}
			},
		}.command("acr cache show"),
		"update": op{
			summary: "change a cache rule's credential set (source and target cannot change, as in ACR)",
			usage:   "--registry R --name N (--cred-set C | --remove-cred-set)",
			setup: func(fs *flag.FlagSet) func() (call, error) {
				reg, name := registryFlag(fs), nameFlag(fs, "rule name")
				cred := fs.String("cred-set", "", "the new credential set")
				remove := fs.Bool("remove-cred-set", false, "remove the credential set")
				return func() (call, error) {
					if err := required("registry", *reg, "name", *name); err != nil {
						return call{}, err
					}
					if (*cred == "") == !*remove {
						return call{}, usagef("give exactly one of --cred-set and --remove-cred-set")
					}
					return call{method: "PATCH", path: rulePath(*reg, *name), body: map[string]string{"credentialSet": *cred}}, nil
				}
			},
		}.command("acr cache update"),
		"delete": op{
			summary: "delete a cache rule (content it cached stays pullable)",
			usage:   "--registry R --name N",
			setup: func(fs *flag.FlagSet) func() (call, error) {
				reg, name := registryFlag(fs), nameFlag(fs, "rule name")
				return func() (call, error) {
					return call{method: "DELETE", path: rulePath(*reg, *name)}, required("registry", *reg, "name", *name)
				}
			},
		}.command("acr cache delete"),
	}
}

func credsetCommands() group {
	base := func(reg string) string { return "/registries/" + esc(registryName(reg)) + "/credentialSets" }
	return group{
		"create": op{
			summary: "create a credential set for cache rules' upstreams",
			usage:   "--registry R --name N --login-server HOST --username U [--password-env VAR | --password-file FILE | --password P]",
			setup: func(fs *flag.FlagSet) func() (call, error) {
				reg, name := registryFlag(fs), nameFlag(fs, "credential set name")
				login := fs.String("login-server", "", "upstream registry host, e.g. docker.io")
				user := fs.String("username", "", "upstream username")
				env := fs.String("password-env", "", "environment variable of the serving process holding the password")
				file := fs.String("password-file", "", "file, on the serving host, holding the password")
				pass := fs.String("password", "", "the password itself (stored in the control state as given)")
				return func() (call, error) {
					cs := deploy.CredentialSet{Name: *name, LoginServer: *login, Username: *user, PasswordEnv: *env, PasswordFile: *file, Password: *pass}
					return call{method: "POST", path: base(*reg), body: cs}, required("registry", *reg, "name", *name, "username", *user)
				}
			},
		}.command("acr credential-set create"),
		"list": op{
			summary: "list a registry's credential sets (passwords are never shown)",
			usage:   "--registry R",
			setup: func(fs *flag.FlagSet) func() (call, error) {
				reg := registryFlag(fs)
				return func() (call, error) { return call{method: "GET", path: base(*reg)}, required("registry", *reg) }
			},
		}.command("acr credential-set list"),
		"delete": op{
			summary: "delete a credential set no rule uses",
			usage:   "--registry R --name N",
			setup: func(fs *flag.FlagSet) func() (call, error) {
				reg, name := registryFlag(fs), nameFlag(fs, "credential set name")
				return func() (call, error) {
					return call{method: "DELETE", path: base(*reg) + "/" + esc(*name)}, required("registry", *reg, "name", *name)
				}
			},
		}.command("acr credential-set delete"),
	}
}

func endpointCommands() group {
	return group{
		"create": op{
			summary: "create a private endpoint for a registry, with its A records in privatelink.azurecr.io",
			usage:   "--registry R --name N [--address HOST:PORT] [--scheme http|https] [--resource-group G]",
			setup: func(fs *flag.FlagSet) func() (call, error) {
				reg, name := registryFlag(fs), nameFlag(fs, "private endpoint name")
				addr := fs.String("address", "", "where nodes reach the registry (default: this airlock for the served registry)")
				scheme := fs.String("scheme", "", "http or https (default: this airlock's for the served registry, else https)")
				group := fs.String("resource-group", "", "resource group (default airlock)")
				fs.StringVar(group, "g", "", "short for --resource-group")
				return func() (call, error) {
					spec := deploy.PrivateEndpointSpec{Name: *name, Registry: registryName(*reg), Address: *addr, Scheme: *scheme, ResourceGroup: *group}
					return call{method: "POST", path: "/privateEndpoints", body: spec}, required("registry", *reg, "name", *name)
				}
			},
		}.command("acr private-endpoint create"),
		"list": op{
			summary: "list private endpoints",
			usage:   "[--registry R]",
			setup: func(fs *flag.FlagSet) func() (call, error) {
				reg := registryFlag(fs)
				return func() (call, error) {
					q := url.Values{}
					if *reg != "" {
						q.Set("registry", registryName(*reg))
					}
					return call{method: "GET", path: "/privateEndpoints", query: q}, nil
				}
			},
		}.command("acr private-endpoint list"),
		"delete": op{
			summary: "delete a private endpoint (and the registry's A records with its last one)",
			usage:   "--name N",
			setup: func(fs *flag.FlagSet) func() (call, error) {
				name := nameFlag(fs, "private endpoint name")
				return func() (call, error) {
					return call{method: "DELETE", path: "/privateEndpoints/" + esc(*name)}, required("name", *name)
				}
			},
		}.command("acr private-endpoint delete"),
	}
}

func dnsCommands() group {
	return group{
		"list": op{
			summary: "list the A records of privatelink.azurecr.io",
			setup: func(fs *flag.FlagSet) func() (call, error) {
				return func() (call, error) { return call{method: "GET", path: "/dnsRecords"}, nil }
			},
		}.command("acr dns list"),
		"set": op{
			summary: "create or change an A record (<registry> or <registry>.<region>.data)",
			usage:   "--name RECORD --ipv4-address IP",
			setup: func(fs *flag.FlagSet) func() (call, error) {
				name := nameFlag(fs, "record name, relative to privatelink.azurecr.io")
				ip := fs.String("ipv4-address", "", "the record's address")
				return func() (call, error) {
					return call{method: "PUT", path: "/dnsRecords/" + esc(*name), body: map[string]string{"ipv4Address": *ip}},
						required("name", *name, "ipv4-address", *ip)
				}
			},
		}.command("acr dns set"),
		"delete": op{
			summary: "delete an A record",
			usage:   "--name RECORD",
			setup: func(fs *flag.FlagSet) func() (call, error) {
				name := nameFlag(fs, "record name")
				return func() (call, error) {
					return call{method: "DELETE", path: "/dnsRecords/" + esc(*name)}, required("name", *name)
				}
			},
		}.command("acr dns delete"),
	}
}
