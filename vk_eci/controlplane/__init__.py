"""A real local Kubernetes control plane built from the official Go modules."""
