"""Search: evaluate candidates with one measurement, keep the Pareto front, pick the cheapest."""
