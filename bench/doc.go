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
// machine. Nothing imports this package but cmd/airlock.
package bench
