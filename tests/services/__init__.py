"""Real servers the tests start on loopback: Prometheus and the Pushgateway (Debian's packages, installed by
tests/services/install.sh) and an S3-compatible server (moto's standalone server, from PyPI)."""
