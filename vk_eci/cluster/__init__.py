"""Cluster side: node and lease, pod controller, ImageCache controller, events."""
