"""Bridges from training frameworks to the tracking client; each imports its framework only when used."""
