"""Cloud side: everything that speaks ECI. Layers, each importing only those below it
(pyproject.toml ``[tool.importlinter]``): ``provider`` | ``pod_io`` > ``caches`` > ``translation``
> ``placement`` | ``groups`` > ``api``. Never imports the cluster side, kubelet, emulator or runner.
"""
