"""Pure graph work and static plan analysis: no trio, no logging, no I/O."""
