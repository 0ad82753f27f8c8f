"""Which image cache a pod starts from, and what ECI says it used: the pod's cache
annotations, the account's catalog, the choice, the decider the provider calls, building a
cache on a miss, ECI's report, ``vk-eci match``'s explanation. May import every lower
``cloud`` package (translation, placement, groups, api) and ``matcher``.
"""
