"""The kubelet HTTPS API (logs, exec, stats) served by the virtual node. May import
``vk_eci.provider``, ``cloud.api``'s errors and the shared leaves (log, metrics, sharing); never
the cluster side, the emulator or the runner, which wires it to the provider.
"""
