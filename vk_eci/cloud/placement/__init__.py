"""Where and on what ECI runs a pod, pure: placement annotations → request fields, annotation
values, instance families, the spec table. No I/O; may import ``cloud.api`` (errors) only.
"""
