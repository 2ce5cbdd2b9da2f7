package controlcli

import (
	"net/http"
	"net/url"

	"github.com/airlock/airlock/deploy"
	"github.com/airlock/airlock/internal/units"
	"github.com/airlock/airlock/rules"
	"github.com/spf13/pflag"
)

// ACR is `airlock acr`: emulated Azure container registries, in the style
// of `az acr`.
func ACR() Command {
	return Command{
		Name:  "acr",
		Short: "Emulated container registries: cache rules, credential sets, private endpoints",
		Long: `Emulated Azure container registries, in the style of az acr. The registry this
airlock serves (control.registry, default airlockbootstrap) answers pulls at
once; a cluster's AKS-managed registry is made by cluster create.`,
		Example: `  airlock acr create --name teamacr
  airlock acr cache create -r teamacr -n aks-managed-mcr --source-repo 'mcr.microsoft.com/*' --target-repo 'aks-managed-repository/*'
  airlock acr show --name teamacr`,
		Sub: []Command{acrCreate(),
			registryByName("show", http.MethodGet, "Show a registry with its rules, credential sets, private endpoints and DNS records", "  airlock acr show --name teamacr"),
			fixed(Command{Name: "list", Short: "List registries", Example: "  airlock acr list --server http://127.0.0.1:5000"}, http.MethodGet, "/registries"),
			registryByName("delete", http.MethodDelete, "Delete a registry (an AKS-managed one is recreated by reconcile)", "  airlock acr delete --name teamacr"),
			cacheCommands(), credsetCommands(), endpointCommands(), dnsCommands()},
	}
}

func acrCreate() Command {
	return Command{
		Name:    "create",
		Args:    "--name NAME [--resource-group GROUP] [--location REGION]",
		Short:   "Create a bring-your-own registry (add rule aks-managed-mcr and a private endpoint before a cluster uses it)",
		Example: `  airlock acr create --name teamacr --location westeurope`,
		Setup: func(fs *pflag.FlagSet) func() (Call, error) {
			name := nameFlag(fs, "registry name: 5-50 lowercase letters and digits")
			group := fs.StringP("resource-group", "g", "", "resource group (default airlock)")
			loc := fs.StringP("location", "l", "", "region (default: the server's control.region)")
			return func() (Call, error) {
				return Call{Method: http.MethodPost, Path: "/registries", Body: deploy.RegistrySpec{Name: *name, ResourceGroup: *group, Location: *loc}},
					requiredFlags("name", *name)
			}
		},
	}
}

func registryByName(name, method, short, example string) Command {
	return byName(Command{Name: name, Args: "--name NAME|ID", Short: short, Example: example}, "registry name or resource ID", method, registryPath)
}

func cacheCommands() Command {
	rulePath := func(reg, name string) string {
		return registryPath(reg) + "/cacheRules/" + esc(name)
	}
	return Command{
		Name:    "cache",
		Short:   "Cache rules: create|list|show|update|delete",
		Example: `  airlock acr cache list -r teamacr`,
		Sub: []Command{{
			Name:  "create",
			Args:  "--registry R --name N --source-repo HOST/REPO[/*] --target-repo REPO[/*] [--cred-set C] [--tag-ttl 5m]",
			Short: "Create a cache rule; on the served registry its target is pullable at once",
			Example: `  airlock acr cache create -r teamacr -n dotnet --source-repo 'mcr.microsoft.com/dotnet/*' --target-repo 'dotnet/*'
  airlock acr cache create -r teamacr -n nginx --source-repo docker.io/library/nginx --target-repo nginx --cred-set dockerhub --tag-ttl 1h`,
			Setup: func(fs *pflag.FlagSet) func() (Call, error) {
				reg, name := registryFlag(fs), nameFlag(fs, "rule name: 5-50 letters, digits, hyphens")
				src := fs.String("source-repo", "", "upstream repository with its host, e.g. mcr.microsoft.com/* or docker.io/library/nginx")
				tgt := fs.String("target-repo", "", "local repository or namespace, e.g. aks-managed-repository/*")
				cred := fs.String("cred-set", "", "credential set for the upstream")
				ttl := fs.Duration("tag-ttl", 0, "how long a tag is served before revalidation (airlock extension; default 5m)")
				return func() (Call, error) {
					if err := requiredFlags("registry", *reg, "name", *name, "source-repo", *src, "target-repo", *tgt); err != nil {
						return Call{}, err
					}
					r := deploy.CacheRule{Rule: rules.Rule{Name: *name, Source: *src, Target: *tgt, CredentialSet: *cred, TagTTL: units.Duration(*ttl)}}
					return Call{Method: http.MethodPost, Path: registryPath(*reg) + "/cacheRules", Body: r}, nil
				}
			},
		},
			inRegistry(Command{
				Name:    "list",
				Args:    "--registry R",
				Short:   "List a registry's cache rules (the served registry's include the configuration file's, fromConfig)",
				Example: `  airlock acr cache list -r airlockbootstrap`,
			}, "", http.MethodGet, func(reg, _ string) string { return registryPath(reg) + "/cacheRules" }),
			inRegistry(Command{
				Name:    "show",
				Args:    "--registry R --name N",
				Short:   "Show a cache rule",
				Example: `  airlock acr cache show -r teamacr -n dotnet`,
			}, "rule name", http.MethodGet, rulePath), {
				Name:  "update",
				Args:  "--registry R --name N (--cred-set C | --remove-cred-set)",
				Short: "Change a cache rule's credential set (source and target cannot change, as in ACR)",
				Example: `  airlock acr cache update -r teamacr -n nginx --cred-set dockerhub2
  airlock acr cache update -r teamacr -n nginx --remove-cred-set`,
				Setup: func(fs *pflag.FlagSet) func() (Call, error) {
					reg, name := registryFlag(fs), nameFlag(fs, "rule name")
					cred := fs.String("cred-set", "", "the new credential set")
					remove := fs.Bool("remove-cred-set", false, "remove the credential set")
					return func() (Call, error) {
						if err := requiredFlags("registry", *reg, "name", *name); err != nil {
							return Call{}, err
						}
						if (*cred == "") == !*remove {
							return Call{}, usageErrorf("give exactly one of --cred-set and --remove-cred-set")
						}
						return Call{Method: http.MethodPatch, Path: rulePath(*reg, *name), Body: map[string]string{"credentialSet": *cred}}, nil
					}
				},
			},
			inRegistry(Command{
				Name:    "delete",
				Args:    "--registry R --name N",
				Short:   "Delete a cache rule (content it cached stays pullable)",
				Example: `  airlock acr cache delete -r teamacr -n dotnet`,
			}, "rule name", http.MethodDelete, rulePath),
		},
	}
}

func credsetCommands() Command {
	base := func(reg string) string { return registryPath(reg) + "/credentialSets" }
	return Command{
		Name:    "credential-set",
		Short:   "Credential sets: create|list|delete",
		Example: `  airlock acr credential-set list -r teamacr`,
		Sub: []Command{{
			Name:    "create",
			Args:    "--registry R --name N --login-server HOST --username U [--password-env VAR | --password-file FILE | --password P]",
			Short:   "Create a credential set for cache rules' upstreams",
			Example: `  airlock acr credential-set create -r teamacr -n dockerhub --login-server docker.io --username me --password-env DOCKERHUB_TOKEN`,
			Setup: func(fs *pflag.FlagSet) func() (Call, error) {
				reg, name := registryFlag(fs), nameFlag(fs, "credential set name")
				login := fs.String("login-server", "", "upstream registry host, e.g. docker.io")
				user := fs.String("username", "", "upstream username")
				env := fs.String("password-env", "", "environment variable of the serving process holding the password")
				file := fs.String("password-file", "", "file, on the serving host, holding the password")
				pass := fs.String("password", "", "the password itself (stored in the control state as given)")
				return func() (Call, error) {
					cs := deploy.CredentialSet{Name: *name, LoginServer: *login, Username: *user, PasswordEnv: *env, PasswordFile: *file, Password: *pass}
					return Call{Method: http.MethodPost, Path: base(*reg), Body: cs}, requiredFlags("registry", *reg, "name", *name, "username", *user)
				}
			},
		},
			inRegistry(Command{
				Name:    "list",
				Args:    "--registry R",
				Short:   "List a registry's credential sets (passwords are never shown)",
				Example: `  airlock acr credential-set list -r teamacr`,
			}, "", http.MethodGet, func(reg, _ string) string { return base(reg) }),
			inRegistry(Command{
				Name:    "delete",
				Args:    "--registry R --name N",
				Short:   "Delete a credential set no rule uses",
				Example: `  airlock acr credential-set delete -r teamacr -n dockerhub`,
			}, "credential set name", http.MethodDelete, func(reg, name string) string { return base(reg) + "/" + esc(name) }),
		},
	}
}

func endpointCommands() Command {
	return Command{
		Name:    "private-endpoint",
		Short:   "Private endpoints: create|list|delete",
		Example: `  airlock acr private-endpoint list -r teamacr`,
		Sub: []Command{{
			Name:    "create",
			Args:    "--registry R --name N [--address HOST:PORT] [--scheme http|https] [--resource-group G]",
			Short:   "Create a private endpoint for a registry, with its A records in privatelink.azurecr.io",
			Example: `  airlock acr private-endpoint create -r teamacr -n teamacr-pe --address 10.1.2.3:443`,
			Setup: func(fs *pflag.FlagSet) func() (Call, error) {
				reg, name := registryFlag(fs), nameFlag(fs, "private endpoint name")
				addr := fs.String("address", "", "where nodes reach the registry (default: this airlock for the served registry)")
				scheme := fs.String("scheme", "", "http or https (default: this airlock's for the served registry, else https)")
				group := fs.StringP("resource-group", "g", "", "resource group (default airlock)")
				return func() (Call, error) {
					spec := deploy.PrivateEndpointSpec{Name: *name, Registry: registryName(*reg), Address: *addr, Scheme: *scheme, ResourceGroup: *group}
					return Call{Method: http.MethodPost, Path: "/privateEndpoints", Body: spec}, requiredFlags("registry", *reg, "name", *name)
				}
			},
		}, {
			Name:    "list",
			Args:    "[--registry R]",
			Short:   "List private endpoints",
			Example: `  airlock acr private-endpoint list -r teamacr`,
			Setup: func(fs *pflag.FlagSet) func() (Call, error) {
				reg := registryFlag(fs)
				return func() (Call, error) {
					q := url.Values{}
					if *reg != "" {
						q.Set("registry", registryName(*reg))
					}
					return Call{Method: http.MethodGet, Path: "/privateEndpoints", Query: q}, nil
				}
			},
		},
			byName(Command{
				Name:    "delete",
				Args:    "--name N",
				Short:   "Delete a private endpoint (and the registry's A records with its last one)",
				Example: `  airlock acr private-endpoint delete -n teamacr-pe`,
			}, "private endpoint name", http.MethodDelete, func(n string) string { return "/privateEndpoints/" + esc(n) }),
		},
	}
}

func dnsCommands() Command {
	return Command{
		Name:    "dns",
		Short:   "A records in privatelink.azurecr.io: list|set|delete",
		Example: `  airlock acr dns list`,
		Sub: []Command{fixed(Command{
			Name:    "list",
			Short:   "List the A records of privatelink.azurecr.io",
			Example: `  airlock acr dns list`,
		}, http.MethodGet, "/dnsRecords"), {
			Name:    "set",
			Args:    "--name RECORD --ipv4-address IP",
			Short:   "Create or change an A record (<registry> or <registry>.<region>.data)",
			Example: `  airlock acr dns set --name teamacr --ipv4-address 10.1.2.3`,
			Setup: func(fs *pflag.FlagSet) func() (Call, error) {
				name := nameFlag(fs, "record name, relative to privatelink.azurecr.io")
				ip := fs.String("ipv4-address", "", "the record's address")
				return func() (Call, error) {
					return Call{Method: http.MethodPut, Path: "/dnsRecords/" + esc(*name), Body: map[string]string{"ipv4Address": *ip}},
						requiredFlags("name", *name, "ipv4-address", *ip)
				}
			},
		},
			byName(Command{
				Name:    "delete",
				Args:    "--name RECORD",
				Short:   "Delete an A record",
				Example: `  airlock acr dns delete --name teamacr`,
			}, "record name", http.MethodDelete, func(n string) string { return "/dnsRecords/" + esc(n) }),
		},
	}
}
