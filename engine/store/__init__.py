"""The embedded run store: every run, its tasks, attempts and commands' output, kept."""
