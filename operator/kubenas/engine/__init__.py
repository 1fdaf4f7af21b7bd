"""The controller core shared by the operator and the local runner.

One pass: observe.observe(backend) -> records; decide.decide(records) -> Plan; execute.execute(Plan,
backend). Pure except through the Backend (backend.py), which Kubernetes and the local runner
implement. Import from the modules: strategies use records and score, so this package imports none
of them eagerly (decide imports the strategies).
"""
