"""Bounces and complaints: recorded per copy, and what each does to its reader."""
