//go:build tools

// Package helm pins the helm command that lints and renders vk-eci's chart in the tests.
package helm

import _ "helm.sh/helm/v3/cmd/helm"
