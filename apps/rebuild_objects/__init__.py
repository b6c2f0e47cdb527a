"""rebuild_objects: recompute Lasair's ZTF object features from detections, vectorized.

``python -m lasair_parallel.apps.rebuild_objects.task`` computes the features of one block of objects and writes
one CSV shard; ``lasair_parallel.apps.rebuild_objects.app`` plans the blocks (see ``parallel run
apps/rebuild_objects -- --help``).
"""

# Environment of every rebuild task (the planner's blocks and the pieces they spawn).  The
# features call no BLAS routine, yet numpy's OpenBLAS starts a server thread per core at import
# and those threads spin: with OPENBLAS_NUM_THREADS=1 a 128,000-object task took 2.23 s
# instead of 2.42 s (median of 8 whole-process runs each, alternating, on 2 cores; CPU 3.19
# against 3.52 s).  One thread also makes any BLAS result independent of the host's cores.
TASK_ENV = (("OPENBLAS_NUM_THREADS", "1"),)
