"""images room."""
