"""Deployment: make serve (serve.py) and the nginx configuration it fills in."""
