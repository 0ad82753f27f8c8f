"""vk-eci: a virtual node that runs Kubernetes pods on Alibaba Cloud ECI."""

__version__ = "0.1.0"
