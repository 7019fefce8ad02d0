"""One module per GitHub event: parse, authorize cheaply, hand off to Temporal. Nothing slow."""
