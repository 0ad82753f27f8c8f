"""Container groups read back as pods: a group's key and tags, group → pod status (pure),
the changed-groups poll, spot reclaim, adopting groups of the old default cluster name.
May import ``cloud.api``; never ``cloud.placement``, ``translation`` or ``caches``.
"""
