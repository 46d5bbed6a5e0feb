"""The Kubernetes manifests for meshforge spread over several GPU hosts (deploy/kubernetes/meshforge.yaml).

    python scripts/generate_kubernetes.py                           # -> deploy/kubernetes/meshforge.yaml
    python scripts/generate_kubernetes.py --flux-gpus 2 --reconstruction-gpus 6 --storage-class cephfs
    kubectl apply -f deploy/kubernetes/

The manifests are generated, never edited by hand: tests/test_kubernetes.py checks that the committed
file equals what this package produces now, and validates it with kubernetes-validate. The services,
ports, environment and YAML writer are those of meshforge.deploy.compose, so both deployments stay the
same stack. See docs/deployment.md ("Kubernetes").

Modules: ``objects`` (labels, pods, workloads, Services, probes), ``config`` (the Secret and the
settings ConfigMaps), ``workloads`` (Redis, the Python services, the UI, the shared volume),
``network`` (Ingress and NetworkPolicies), ``monitoring`` (Prometheus), ``manifest`` (the whole file)
and ``cli`` (the command line).
"""
