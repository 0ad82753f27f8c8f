"""Every Prometheus metric of the node, in one place.

Metrics live in an explicit :class:`Metrics` object with its own registry rather than the
global default one, so that tests (and two nodes in one process) can each count on their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LOOKUP_MODES = ("explicit", "auto")
LOOKUP_RESULTS = ("hit", "partial", "miss", "not_ready", "not_found")
# What ECI reports it used, who chose it, and a pod's cache result (its start-time label).
CACHE_RESULTS = ("hit", "partial", "miss")
CHOSEN_BY = ("node", "eci")
START_CACHE_RESULTS = ("hit", "partial", "miss", "none")
POD_PHASES = ("Pending", "Running", "Succeeded", "Failed")
ADVISOR_ACTIONS = ("create", "keep", "update", "retire")

_MATCH_BUCKETS = (0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05)
_POD_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 300, 600)
_API_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_LOOP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_LAG_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60)


@dataclass
class Metrics:
    """The node's metrics, registered in ``registry``."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.cache_lookups = Counter(
            "vk_eci_image_cache_lookups_total",
            "Image-cache lookups for pods, by mode (explicit/auto) and result.",
            ["mode", "result"], registry=r)
        # What ECI reports it used (its SuccessfulHitImageCache / ImageCacheMissed events), once
        # per pod, and who chose the cache: the truth for hit-rate dashboards.
        self.image_cache_results = Counter(
            "vk_eci_image_cache_results_total",
            "Pods by the image cache ECI used: result (hit/partial/miss) and chosen_by "
            "(node/eci).", ["result", "chosen_by"], registry=r)
        self.image_cache_disagreements = Counter(
            "vk_eci_image_cache_disagreements_total",
            "Pods for which ECI used another image cache than the node chose.", registry=r)
        self.images_requested = Counter(
            "vk_eci_pod_images_requested_total",
            "Distinct images of pods that asked for an image cache.", registry=r)
        self.images_from_cache = Counter(
            "vk_eci_pod_images_served_from_cache_total",
            "Images of those pods that the chosen cache holds.", registry=r)
        self.match_duration = Histogram(
            "vk_eci_image_cache_match_duration_seconds",
            "Time to choose an image cache for one pod.", buckets=_MATCH_BUCKETS, registry=r)
        self.pod_create_duration = Histogram(
            "vk_eci_pod_create_duration_seconds",
            "From pod seen by the node to ECI accepting its container group, by cache result.",
            ["cache_result"], buckets=_POD_BUCKETS, registry=r)
        self.pod_start_duration = Histogram(
            "vk_eci_pod_start_duration_seconds",
            "From pod seen by the node to the pod Running, by cache result.",
            ["cache_result"], buckets=_POD_BUCKETS, registry=r)
        self.eci_requests = Counter(
            "vk_eci_eci_api_requests_total",
            "ECI API requests by action and result code (OK for success).",
            ["action", "code"], registry=r)
        self.eci_request_duration = Histogram(
            "vk_eci_eci_api_request_duration_seconds",
            "ECI API request latency by action.", ["action"], buckets=_API_BUCKETS, registry=r)
        self.eci_retries = Counter(
            "vk_eci_eci_api_retries_total",
            "ECI API calls retried, by action and error class.", ["action", "kind"], registry=r)
        self.pods = Gauge(
            "vk_eci_pods", "Pods on this node by phase.", ["phase"], registry=r)
        self.image_caches = Gauge(
            "vk_eci_image_caches", "The account's ECI image caches by status.", ["phase"],
            registry=r)
        self.node_ready = Gauge(
            "vk_eci_node_ready", "1 while the node reports Ready (ECI answers), else 0.",
            registry=r)
        # Pod status sync (cluster side): cycles run and pod statuses written, so that the ECI
        # calls a cycle costs, and writes skipped as unchanged, can be seen.
        self.status_sync_cycles = Counter(
            "vk_eci_pod_status_sync_cycles_total", "Pod status sync cycles run.", registry=r)
        # Spot reclaims announced by ECI (SpotToBeReleased), once per container group: the
        # chart's VkEciSpotPreemptions alert fires on its rate.
        self.spot_preemptions = Counter(
            "vk_eci_spot_preemptions_total",
            "Spot container groups ECI announced it will reclaim.", registry=r)
        self.pod_status_writes = Counter(
            "vk_eci_pod_status_writes_total", "Pod statuses written (changed ones only).",
            registry=r)
        # How late a pod's new phase reaches the API server after ECI's transition
        # (ECI's own timestamps; an upper bound, see pods.sync.transition_time), and the polls
        # for changed statuses that the incremental mode runs between full listings.
        self.pod_status_lag = Histogram(
            "vk_eci_pod_status_lag_seconds",
            "From ECI's transition of a pod's phase (its own timestamps) to our status write, "
            "by the new phase.", ["phase"], buckets=_LAG_BUCKETS, registry=r)
        self.status_polls = Counter(
            "vk_eci_pod_status_polls_total",
            "Polls of ECI for changed pod statuses (incremental mode).", registry=r)
        # kubectl logs -f / exec sessions of the kubelet API and those refused by a cap
        # (docs/SECURITY.md, item 4): a tenant flooding the node shows here before it shows in
        # ECI's quota.
        self.kubelet_sessions = Gauge(
            "vk_eci_kubelet_sessions", "Open kubelet API sessions (logs -f, exec).",
            registry=r)
        self.kubelet_sessions_refused = Counter(
            "vk_eci_kubelet_sessions_refused_total",
            "Kubelet API sessions refused by a cap: node, namespace or user.", ["cap"],
            registry=r)
        # The cache advisor: what the current plan expects to save and cost, the
        # caches it names by action, what it changed, and what its own caches saved so far
        # (pull seconds that pods started from an advisor-owned cache did not spend, estimated
        # from the mean uncached pull of each image the cache served).
        self.advisor_expected_savings = Gauge(
            "vk_eci_imagecache_advisor_expected_savings_seconds_per_day",
            "Pull seconds per day the advisor's current plan expects its caches to save.",
            registry=r)
        self.advisor_cost = Gauge(
            "vk_eci_imagecache_advisor_cost_per_day",
            "Cost per day of the plan's caches (GiB x --imagecache-advisor-cost-per-gib-day).",
            registry=r)
        self.advisor_caches = Gauge(
            "vk_eci_imagecache_advisor_caches",
            "Caches of the advisor's current plan by action (create/keep/update/retire).",
            ["action"], registry=r)
        self.advisor_applied = Counter(
            "vk_eci_imagecache_advisor_applied_total",
            "ImageCache objects the advisor created, updated or deleted (apply mode).",
            ["action"], registry=r)
        self.advisor_hits = Counter(
            "vk_eci_imagecache_advisor_hits_total",
            "Pods ECI started from an advisor-owned image cache.", registry=r)
        self.advisor_realised_savings = Counter(
            "vk_eci_imagecache_advisor_realised_savings_seconds_total",
            "Pull seconds saved by advisor-owned caches (from observed uncached pulls).",
            registry=r)
        self.advisor_image_sets = Gauge(
            "vk_eci_imagecache_advisor_image_sets",
            "Distinct image sets in the advisor's demand record.", registry=r)
        # The fleet (docs/RELIABILITY.md "One account budget"): this process's share of the
        # ECI account's rate limits and the members it counts (itself included).
        self.fleet_share = Gauge(
            "vk_eci_fleet_share",
            "This process's share of the ECI account's rate limits (0: waiting to be counted).",
            registry=r)
        self.fleet_members = Gauge(
            "vk_eci_fleet_members",
            "Live vk-eci processes of this ECI account that this process counts.", registry=r)
        # How late the event loop wakes up (vk_eci.runner.looplag): a handler holding the loop
        # delays every other part of the node, the Lease renewal first.
        self.event_loop_lag = Histogram(
            "vk_eci_event_loop_lag_seconds",
            "How late a short sleep of the node's event loop woke up.",
            buckets=_LOOP_BUCKETS, registry=r)
        self.event_loop_lag_max = Gauge(
            "vk_eci_event_loop_lag_max_seconds",
            "The event loop's worst lag since the process started.", registry=r)
        self._zero_known_children()

    def _zero_known_children(self) -> None:
        """Export the dashboard's labelled series at 0 from the start. A child created at its
        first increment is first scraped at 1 or more, and rate()/increase() count only what
        changes between scrapes: that first pod (the first hit, the first miss) would never
        show on the hit-rate and start-latency panels."""
        for mode in LOOKUP_MODES:
            for result in LOOKUP_RESULTS:
                self.cache_lookups.labels(mode=mode, result=result)
        for result in CACHE_RESULTS:
            for chosen_by in CHOSEN_BY:
                self.image_cache_results.labels(result=result, chosen_by=chosen_by)
        for result in START_CACHE_RESULTS:
            self.pod_create_duration.labels(cache_result=result)
            self.pod_start_duration.labels(cache_result=result)
        for phase in POD_PHASES:
            self.pod_status_lag.labels(phase=phase)
        # An advisor that is off, or has planned nothing yet, has 0 caches per action.
        for action in ADVISOR_ACTIONS:
            self.advisor_caches.labels(action=action)
            self.advisor_applied.labels(action=action)
