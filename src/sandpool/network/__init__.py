"""Network policy of containers: ``none``, an allow-list, or ``open``; enforced on the host.

``policy`` parses modes and allow rules (pure: the configuration uses it); ``settings`` holds
the worker's range, refused ranges and DNS upstream, and the kernel names of a container's
pieces; ``addresses`` leases per-container /30s; ``netns`` makes the namespace and veth;
``nft`` the container's table; ``dns`` its DNS filter; ``attach`` puts them together for a
run or a sandbox (``ContainerNetwork``, ``change_policy``, ``teardown``); ``run`` picks a
one-shot run's policy. Nothing is imported here, so the configuration's use of ``policy``
does not load the DNS library.
"""
