"""The cache advisor: from observed demand, which ImageCaches should exist.
May import the cloud side's pure leaves (cache annotations, placement values); never the
cluster side, which applies its plans (``cluster.advising``), nor the runner.

``model`` holds the plain records shared by observation (what the node saw), planning (pure:
``planner``, over ``candidates`` and ``savings``) and applying (the ImageCache objects the
advisor owns). See docs/ADVISOR.md.
"""
