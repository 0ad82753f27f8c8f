"""Who may use which cloud identity, network and size (docs/PROFILE.md): the policy of the ECI
profile, pure. ``rules`` parses it, ``profile`` parses the whole ``eci-profile`` ConfigMap and
matches its selectors, ``evaluate`` decides one pod. Imports only cloud's placement and api
leaves; the provider (at group creation) and the admission webhook both import it.
"""
