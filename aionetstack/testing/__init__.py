"""Public test helpers: network namespaces, a manual clock, TCP pairs, a network simulator.

Nothing in the package imports this subpackage; tests and benchmarks do.
"""
