"""The Python SDK: connection, typed client, events, errors, live feed view, sync wrapper."""
