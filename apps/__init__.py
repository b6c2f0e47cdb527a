"""Apps: each plans its tasks (``app.py``) and runs one task on a worker (``task.py``)."""
