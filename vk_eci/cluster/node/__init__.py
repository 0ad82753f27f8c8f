"""The Node object and who may act for it: the node controller and its status, the heartbeat
Lease, process identity and the unelected-twin guard, the cluster name groups are tagged
with. May import ``cluster.kube`` and cloud leaf modules.
"""
