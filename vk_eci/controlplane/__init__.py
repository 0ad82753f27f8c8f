"""A real local Kubernetes control plane built from the official Go modules (tests, demo).
Layers: ``commands`` > ``cluster`` | ``metrics_server`` | ``legacy`` | ``kube_proxy`` |
``cluster_dns`` > ``state`` | ``pki`` |
``build`` > ``netns``; imports nothing of the node but ``vk_eci.log``.
"""
