"""busy: a test load that burns CPU or sleeps, for benchmarks and scheduler tests."""
