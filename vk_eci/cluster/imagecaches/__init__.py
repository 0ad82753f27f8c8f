"""The ImageCache controller: its lifecycle (leader, informer, queue) and one module per
reconcile step, which caches it may touch, the request it builds, ``.status``, Events.
May import ``cluster.kube`` and cloud leaf modules; never ``cluster.pods``.
"""
