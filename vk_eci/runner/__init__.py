"""The composition root of ``vk-eci run``: the only package that builds both sides (cloud and
cluster) and the kubelet API, and wires them together. Nothing of the node imports it.
"""
