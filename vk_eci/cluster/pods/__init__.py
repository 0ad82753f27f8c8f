"""Pods on this node ⇄ ECI groups (virtual-kubelet's pod controller and sync): the pod
controller, status written back in batches, start-up reconciliation, the objects a pod
refers to. May import ``cluster.node``, ``cluster.kube``, ``vk_eci.provider`` and cloud leaf
modules; never ``cluster.imagecaches``.
"""
