"""Model systems: one folder each, registered with :func:`ufm.core.register_system`."""
