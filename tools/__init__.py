"""Generators for files the project commits: monitoring (alerts, dashboard), the chart's values schema, the
metrics reference. Each writes its files with `make <target>`; a test checks the committed files equal what
the generator writes, so the generator is the one place to edit."""
