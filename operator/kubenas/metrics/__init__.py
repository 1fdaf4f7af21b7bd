"""Metrics: trials' live per-epoch metrics (Pushgateway in, Prometheus out) and the operator's own."""
