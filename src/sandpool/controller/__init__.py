"""The Kubernetes half: pure builders from configuration to typed objects, and one thin client.

    worker_env.py      the contract between a worker Job and ``sandpool worker`` (env, probes)
    names.py           Kubernetes-safe names and the labels every object carries
    volumes.py         the volumes and mounts of a worker pod
    jobs.py            one pool -> one ``batch/v1`` Job (pure)
    runtimeclasses.py  pod runtimes -> ``node.k8s.io/v1`` RuntimeClasses (pure)
    manifests.py       a whole configuration -> the list of objects, and their YAML
    preflight.py       what must exist in the cluster before anything is created
    cluster.py         the only module that talks to the API server (lightkube)
    apply.py           preflight, then create or update each object

Data flows from ``sandpool.config`` only; nothing here imports the runtime or worker layers.
"""
