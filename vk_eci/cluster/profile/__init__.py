"""The ECI profile as the cluster holds it: the ``eci-profile`` ConfigMap and the namespaces'
labels, each kept current by an Informer (docs/PROFILE.md). May import ``cluster.kube`` and
cloud's ``policy`` leaf; the runner hands what it reads to the provider and the webhook.
"""
