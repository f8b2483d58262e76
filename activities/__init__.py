"""Every side effect of a bill's life, grouped by what it touches; workflows call them by name."""
