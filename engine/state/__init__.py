"""The shared store that tasks read and write: a threading lock, no trio."""
