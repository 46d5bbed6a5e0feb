"""A meshforge stage service (see its app module)."""

import os

# Before numpy loads: its threaded BLAS turns the small, tall products of the mesh and image work
# (e.g. 200k points × a 3×3 camera) into thread hand-offs that cost 10-30× the arithmetic on a busy
# host. One thread unless the operator says otherwise; torch keeps its own thread pool.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
