//go:build tools

// Package metricsserver pins the metrics-server that scrapes the virtual node's
// /metrics/resource for `kubectl top` and the HPA in the integration tests.
package metricsserver

import _ "sigs.k8s.io/metrics-server/cmd/metrics-server"
