//go:build tools

// Package tools pins the operator's package so `go mod tidy` keeps its dependencies.
package tools

import _ "github.com/cilium/cilium/operator"
