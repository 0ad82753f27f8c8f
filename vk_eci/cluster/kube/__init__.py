"""API-server plumbing every controller shares, with no ECI semantics: the client, fast
decoding, the fence every node write passes, the one list+watch, the work queue, Lease
leader election, pod Events. Imports no other ``vk_eci.cluster`` package.
"""
