"""Pod → ``CreateContainerGroupRequest`` in one pure pass (``pod.translate``), one module per
field family. Reads the cluster only through ``vk_eci.provider.PodResources``; may import
``cloud.placement`` and ``cloud.api``, never ``cloud.caches`` or ``cloud.groups``.
"""
