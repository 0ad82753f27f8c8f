"""The fleet: every vk-eci process of one ECI account in a cluster, found through
``coordination.k8s.io`` Leases, sharing the account's per-action rate limits
(``docs/RELIABILITY.md`` "One account budget"). ``account`` names the account without its key,
``shares`` decides a process's share from what it sees (pure), ``member`` keeps this process's
Lease and watches the others'. Sits above ``node`` and ``kube``; the cloud side only receives a
share through a setter.
"""
