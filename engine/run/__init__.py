"""Running a plan on trio: tasks, adapters, the run core, its events and records."""
