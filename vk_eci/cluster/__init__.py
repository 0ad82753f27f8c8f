"""Cluster side: everything that speaks to the API server. Layers: ``advising`` >
``imagecaches`` | ``pods`` > ``node`` > ``kube``; may import the cloud side's leaf modules,
``vk_eci.provider`` and ``vk_eci.advisor``, never the emulator or the runner.
"""
