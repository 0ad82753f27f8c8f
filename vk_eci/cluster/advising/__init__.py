"""The node's side of the cache advisor: plan every interval, keep the record in a
ConfigMap, write the ImageCache objects it owns. May import ``vk_eci.advisor``,
``cluster.imagecaches`` and ``cluster.kube``.
"""
