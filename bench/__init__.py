"""`make bench` (`python -m bench`): the app's speed, storage transactions and scaling figures.

A benchmark, not a test: it prints and saves figures and asserts nothing about speed. It
writes bench/results.json, bench/results.md and bench/latency.png.
"""
