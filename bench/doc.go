// Package bench is airlock's pull benchmark ("airlock bench"): it starts the
// MAR emulator and each target registry fresh for every run on 127.0.0.1,
// drives simulated AKS nodes at them with go-containerregistry clients the
// way containerd pulls (manifests first, then three blobs at once), and
// reports pull times, time to first byte, throughput, the upstream requests
// and bytes per digest counted by the emulator, errors, and the targets'
// peak RSS and CPU, as a terminal table, results.json and report.html.
//
// Targets are measured in the same run, interleaved, and summarised as the
// median of the runs, so that figures can be read as ratios on a noisy
// machine.
//
// It also measures registries it did not start (RunRegistries: any OCI
// registry, with Docker-config, Basic or ACR token-flow credentials) in
// cluster events whose nodes arrive as a storm, a ramp or a rolling
// upgrade, played by this process or by many load machines: a
// coordinator gives each `airlock bench agent` a slice of the nodes,
// starts them at one barrier and merges their counts and latency
// histograms exactly. Nothing imports this package but cmd/airlock.
package bench
