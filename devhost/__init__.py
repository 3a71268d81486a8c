"""Local development host for the Azure Functions Python v2 programming model.

It reads the app's own binding metadata and serves HTTP triggers, polls queue
triggers and fires timer triggers the way the Azure Functions host documents.
Run it with ``python -m devhost``.
"""
