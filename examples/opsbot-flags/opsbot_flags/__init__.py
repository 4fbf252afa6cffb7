"""An example opsbot action plugin: ``flags.set`` turns a feature flag on or off in a JSON flag file."""
