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
#
# NUMPY_MADVISE_HUGEPAGE=0: numpy asks for transparent huge pages for every large array.  On a
# VM whose balloon reports free memory to its host (virtio-balloon free page reporting, as on
# this project's 2-core machines), a freed 2 MB page goes back to the host within seconds, and
# the next huge page costs the host's faults again: a 500 MB numpy array was touched in
# 0.12-0.14 ms/MB right after another process freed one, 1.5-2.5 ms/MB after 5 s idle, against
# 0.45-0.53 ms/MB in 4 KB pages either way.  The 128,000-object task took 2.41-2.45 s
# instead of 2.54-2.62 s without them (median of 6-8 whole-process runs each, alternating,
# 0-3 s apart; system time 0.77-0.84 against 0.91-1.09 s).  Where huge pages are cheap
# (bare metal), 4 KB pages cost this task's ~130 MB of arrays ~0.05 s at most.
#
# ARROW_DEFAULT_MEMORY_POOL=system: pyarrow 26's default pool (mimalloc) gets its memory in
# the same costly way (its dictionary_encode of the block's 1.28M objectIds: 0.11-0.15 s, of
# it 0.07 s system time, for ~560 page faults; 0.07 s with glibc's malloc).  The task took
# 2.47-2.50 s instead of 2.62-2.63 s (8 alternating runs each, twice; system time 0.83-0.85
# against 1.04-1.07 s) and peaked at 448 instead of 493 MB.
TASK_ENV = (("OPENBLAS_NUM_THREADS", "1"), ("NUMPY_MADVISE_HUGEPAGE", "0"),
            ("ARROW_DEFAULT_MEMORY_POOL", "system"))
