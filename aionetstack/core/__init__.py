"""Sans-I/O protocol machines. No clock, no I/O, no event loop: every
time-dependent call takes ``now=`` (seconds on the driver's monotonic clock)."""
