"""Tests of the load generator (clients/loadtest) against real hub processes."""
