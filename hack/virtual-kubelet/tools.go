//go:build tools

// Package virtualkubelet pins the Go virtual-kubelet (mock provider) that
// benchmarks/bench_vs_virtual_kubelet.py runs beside vk-eci.
package virtualkubelet

import _ "github.com/virtual-kubelet/virtual-kubelet/cmd/virtual-kubelet"
