"""The operator: kopf handlers (thin), pure manifest builders and observation, idempotent API calls."""
