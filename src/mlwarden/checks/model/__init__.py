"""model.* checks: what the model exposes to its users — evasion, poisoning of the retraining
loop, membership inference and extraction — against the safe-loaded artifact or a live endpoint."""
