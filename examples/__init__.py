"""Example job types, each one module that `JOB_HANDLER_MODULES` can name."""
