"""The Kubernetes half: pure builders from configuration to typed objects, and one thin client.

    worker_env.py      the contract between a worker pod and ``sandpool worker`` (env, probes)
    names.py           Kubernetes-safe names and the labels every object carries
    volumes.py         the volumes and mounts of a worker pod
    wiring.py          the names one object uses to reach another (Secret keys, Services, config)
    workers.py         one pool -> one worker ``apps/v1`` Deployment (pure)
    gateway.py         the gateway Deployment and its Service (pure)
    stores.py          Redis and PostgreSQL for a small install, each behind a NetworkPolicy (pure)
    credentials.py     the Secret: keys and passwords made once and kept, URLs derived
    configmap.py       the configuration as a ConfigMap, secrets removed (pure)
    runtimeclasses.py  pod runtimes -> ``node.k8s.io/v1`` RuntimeClasses (pure)
    manifests.py       a whole configuration -> the objects in apply order, and their YAML
    preflight.py       what must exist in the cluster before anything is created
    cluster.py         the only module that talks to the API server (lightkube)
    apply.py           preflight, then create or update each object

Data flows from ``sandpool.config`` only; nothing here imports the runtime or worker layers.
"""
