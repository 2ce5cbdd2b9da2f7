package adminapi

import (
	"net/http"

	"github.com/airlock/airlock/deploy"
)

// routes lists the API: ACR-like registries, cache rules, credential sets,
// private endpoints and DNS records; AKS-like clusters.
func routes(h func(string, handlerFunc), svc *deploy.Service) {
	const p = Prefix
	ok := func(v any, err error) (int, any, error) { return http.StatusOK, v, err }
	created := func(v any, err error) (int, any, error) { return http.StatusCreated, v, err }
	none := func(err error) (int, any, error) { return http.StatusNoContent, nil, err }

	h("GET "+p+"/registries", func(r *http.Request) (int, any, error) { return ok(svc.Registries(r.Context())) })
	h("POST "+p+"/registries", decoded(func(r *http.Request, spec deploy.RegistrySpec) (int, any, error) {
		return created(svc.CreateRegistry(r.Context(), spec))
	}))
	h("GET "+p+"/registries/{registry}", func(r *http.Request) (int, any, error) {
		return ok(svc.Registry(r.Context(), r.PathValue("registry")))
	})
	h("DELETE "+p+"/registries/{registry}", func(r *http.Request) (int, any, error) {
		return ok(svc.DeleteRegistry(r.Context(), r.PathValue("registry")))
	})

	h("GET "+p+"/registries/{registry}/cacheRules", func(r *http.Request) (int, any, error) {
		return ok(svc.CacheRules(r.Context(), r.PathValue("registry")))
	})
	h("POST "+p+"/registries/{registry}/cacheRules", decoded(func(r *http.Request, rule deploy.CacheRule) (int, any, error) {
		return created(svc.CreateCacheRule(r.Context(), r.PathValue("registry"), rule))
	}))
	h("GET "+p+"/registries/{registry}/cacheRules/{rule}", func(r *http.Request) (int, any, error) {
		return ok(svc.CacheRule(r.Context(), r.PathValue("registry"), r.PathValue("rule")))
	})
	h("PATCH "+p+"/registries/{registry}/cacheRules/{rule}", decoded(func(r *http.Request, rule deploy.CacheRule) (int, any, error) {
		rule.Name = r.PathValue("rule")
		return ok(svc.UpdateCacheRule(r.Context(), r.PathValue("registry"), rule))
	}))
	h("DELETE "+p+"/registries/{registry}/cacheRules/{rule}", func(r *http.Request) (int, any, error) {
		return none(svc.DeleteCacheRule(r.Context(), r.PathValue("registry"), r.PathValue("rule")))
	})

	h("GET "+p+"/registries/{registry}/credentialSets", func(r *http.Request) (int, any, error) {
		return ok(svc.CredentialSets(r.Context(), r.PathValue("registry")))
	})
	h("POST "+p+"/registries/{registry}/credentialSets", decoded(func(r *http.Request, cs deploy.CredentialSet) (int, any, error) {
		return created(svc.CreateCredentialSet(r.Context(), r.PathValue("registry"), cs))
	}))
	h("DELETE "+p+"/registries/{registry}/credentialSets/{set}", func(r *http.Request) (int, any, error) {
		return none(svc.DeleteCredentialSet(r.Context(), r.PathValue("registry"), r.PathValue("set")))
	})

	h("GET "+p+"/privateEndpoints", func(r *http.Request) (int, any, error) {
		return ok(svc.PrivateEndpoints(r.Context(), r.URL.Query().Get("registry")))
	})
	h("POST "+p+"/privateEndpoints", decoded(func(r *http.Request, spec deploy.PrivateEndpointSpec) (int, any, error) {
		return created(svc.CreatePrivateEndpoint(r.Context(), spec))
	}))
	h("DELETE "+p+"/privateEndpoints/{name}", func(r *http.Request) (int, any, error) {
		return ok(svc.DeletePrivateEndpoint(r.Context(), r.PathValue("name")))
	})

	h("GET "+p+"/dnsRecords", func(r *http.Request) (int, any, error) { return ok(svc.DNSRecords(r.Context())) })
	h("PUT "+p+"/dnsRecords/{name}", decoded(func(r *http.Request, rec deploy.DNSRecord) (int, any, error) {
		rec.Name = r.PathValue("name")
		return ok(svc.SetDNSRecord(r.Context(), rec))
	}))
	h("DELETE "+p+"/dnsRecords/{name}", func(r *http.Request) (int, any, error) {
		return none(svc.DeleteDNSRecord(r.Context(), r.PathValue("name")))
	})

	clusterRoutes(h, svc, ok, created)
}

func clusterRoutes(h func(string, handlerFunc), svc *deploy.Service, ok, created func(any, error) (int, any, error)) {
	const p = Prefix
	h("GET "+p+"/clusters", func(r *http.Request) (int, any, error) { return ok(svc.Clusters(r.Context())) })
	h("POST "+p+"/clusters", decoded(func(r *http.Request, spec deploy.ClusterSpec) (int, any, error) {
		return created(svc.CreateCluster(r.Context(), spec))
	}))
	h("GET "+p+"/clusters/{cluster}", func(r *http.Request) (int, any, error) {
		return ok(svc.Cluster(r.Context(), r.PathValue("cluster")))
	})
	h("PATCH "+p+"/clusters/{cluster}", decoded(func(r *http.Request, u deploy.ClusterUpdate) (int, any, error) {
		return ok(svc.UpdateCluster(r.Context(), r.PathValue("cluster"), u))
	}))
	h("DELETE "+p+"/clusters/{cluster}", func(r *http.Request) (int, any, error) {
		return ok(svc.DeleteCluster(r.Context(), r.PathValue("cluster")))
	})
	h("POST "+p+"/clusters/{cluster}/reconcile", func(r *http.Request) (int, any, error) {
		return ok(svc.Reconcile(r.Context(), r.PathValue("cluster")))
	})
	h("POST "+p+"/reconcile", func(r *http.Request) (int, any, error) { return ok(svc.Reconcile(r.Context(), "")) })
	h("POST "+p+"/clusters/{cluster}/agentPools", decoded(func(r *http.Request, spec deploy.NodePoolSpec) (int, any, error) {
		return created(svc.AddNodePool(r.Context(), r.PathValue("cluster"), spec))
	}))
	h("DELETE "+p+"/clusters/{cluster}/agentPools/{pool}", func(r *http.Request) (int, any, error) {
		return ok(svc.DeleteNodePool(r.Context(), r.PathValue("cluster"), r.PathValue("pool")))
	})
	h("POST "+p+"/clusters/{cluster}/upgradeNodeImage", func(r *http.Request) (int, any, error) {
		return ok(svc.UpgradeNodeImage(r.Context(), r.PathValue("cluster"), r.URL.Query().Get("nodepool")))
	})
	h("GET "+p+"/clusters/{cluster}/nodeconfig", func(r *http.Request) (int, any, error) {
		q := r.URL.Query()
		return ok(svc.NodeConfig(r.Context(), r.PathValue("cluster"), deploy.NodeConfigOptions{
			Scheme: q.Get("scheme"), RegistryHost: q.Get("registryHost"), CA: q.Get("ca"),
			FallbackServer: q.Get("fallbackServer"), CertsDir: q.Get("certsDir"),
		}))
	})
}
