//go:build tools

// Package kubeproxy pins the kube-proxy that the virtual node injects into each container
// group, built from the same Kubernetes release as hack/controlplane (the emulator runs it
// for real in the integration tests); nothing here is compiled into vk-eci itself.
package kubeproxy

import _ "k8s.io/kubernetes/cmd/kube-proxy"
