"""The admission webhook served by vk-eci (docs/PROFILE.md): pods routed to the node by the ECI
profile's selectors (mutate), pods that break its policy and malformed ImageCache objects
refused at apply (validate). Imports cloud's ``policy`` leaf; never the cluster side (the
runner hands it the profile, the namespaces' labels and the ImageCache check).
"""
