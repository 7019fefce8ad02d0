"""`otto eval`: Otto end to end on SWE-bench-style instances in a local world, scored like SWE-bench."""
