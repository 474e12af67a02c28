"""Thin blueprints: parse the request, call one domain function, render."""
