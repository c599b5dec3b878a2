"""Local stand-ins of outside systems, for the demo run, tests and benchmarks; never imported by the product."""
