"""The cache advisor (docs/ADVISOR.md): from observed demand, which ImageCaches should exist.

``model`` holds the plain records shared by observation (what the node saw), planning (pure:
``planner``, over ``candidates`` and ``savings``) and applying (the ImageCache objects the
advisor owns). See docs/ADVISOR.md.
"""
