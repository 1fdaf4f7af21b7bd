"""Labels and names shared by everything the operator creates."""

from kubenas.api.experiment import GROUP

EXPERIMENT_LABEL = f"{GROUP}/experiment"
TRIAL_LABEL = f"{GROUP}/trial"
INDEX_LABEL = f"{GROUP}/trial-index"
MANAGED_BY = {"app.kubernetes.io/managed-by": "kubenas"}
TRAINER_CONTAINER = "trainer"
