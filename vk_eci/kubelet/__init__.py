"""The kubelet HTTPS API (logs, exec, stats) served by the virtual node."""
