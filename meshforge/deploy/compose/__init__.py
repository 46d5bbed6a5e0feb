"""The production docker-compose files for a server with N GPUs (or the CPU-only profile).

    python scripts/generate_compose.py --gpus 8                 # -> docker-compose.yml
    python scripts/generate_compose.py --cpu                    # -> docker-compose.cpu.yml
    python scripts/generate_compose.py --gpus 4 --flux-gpus 1 --output my-compose.yml

The compose files are generated, never edited by hand: tests/test_compose.py checks that every
committed one equals what this package produces now. The output is plain YAML written by hand
(meshforge.deploy.yaml_text), so that it can carry comments and needs no YAML library.

Beside the compose file it writes its profile's defaults (deploy/compose/gpu.env or cpu.env, committed
too) and, when there is none yet, meshforge.env: a copy of meshforge.env.example, every line commented
out. Every service reads both as its env_file, meshforge.env last, so the operator's settings there
override the profile's defaults; the `environment:` written here (the layout) wins over both.

Modules: ``layout`` (the arguments, and which GPU each replica takes), ``services`` (one service's
definition), ``stack`` (the whole file: Redis, the control plane, one replica per GPU, the UI and
Prometheus), ``companions`` (the files it reads) and ``cli`` (the command line).
"""
