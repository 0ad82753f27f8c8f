//go:build tools

// Package controlplane135 pins an API server older than 1.36: it talks SPDY/3.1 to kubelets for
// exec, so the tests prove vk-eci's SPDY path against a real one. Only kube-apiserver is built
// from here; etcd, kubectl and the rest come from ../controlplane.
package controlplane135

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
