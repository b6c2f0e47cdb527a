"""The head node: scheduler, SSH transport, worker agent, journal and the ``parallel`` CLI."""
