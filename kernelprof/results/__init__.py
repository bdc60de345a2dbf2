"""Results documents: their schema (versioned, typed records) and their analysis."""
