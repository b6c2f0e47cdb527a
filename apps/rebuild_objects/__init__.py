"""rebuild_objects: recompute Lasair's ZTF object features from detections, vectorized.

``python -m lasair_parallel.apps.rebuild_objects.task`` computes the features of one block of objects and writes
one CSV shard; ``lasair_parallel.apps.rebuild_objects.app`` plans the blocks (see ``parallel run
apps/rebuild_objects -- --help``).
"""
