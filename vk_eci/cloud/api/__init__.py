"""The only code that calls the ECI SDK, and its vocabulary: the client (retries, paging,
metrics), the one classification of ECI's errors, per-action rate limits, the exec stream,
the names and tags of what the node makes in ECI. Imports no other ``vk_eci.cloud`` package.
"""
