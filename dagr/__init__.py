"""DAGR."""
