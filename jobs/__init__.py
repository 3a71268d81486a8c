"""The queue-backed job package: models, lifecycle, status store and handlers.

It never imports azure.functions, so it can be read and tested on its own;
function_app.py is the only place that knows about the Functions host.
"""
