//go:build tools

// Package coredns pins the CoreDNS that `vk-eci cluster up --cluster-dns` runs as the local
// cluster's DNS (its kubernetes plugin reads Services from the API server); nothing here is
// compiled into vk-eci itself.
package coredns

import _ "github.com/coredns/coredns"
