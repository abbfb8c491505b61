"""The seams the domain and the fan-out run on, with their implementations.

``base`` holds the interfaces (Store, ChangeLog, Bus, Presence); ``sqlite*`` the embedded
Store and ChangeLog; ``memory`` the in-process Bus and Presence; ``redis_*`` the shared
implementations for several nodes (the only modules that import ``redis``); ``bundle``
opens the configured set. Import implementations from their modules, so that only what
is used gets loaded.
"""
