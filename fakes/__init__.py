"""Fakes of the services opsbot talks to, for the demo, the tests and the benchmarks only.

Each behaves like the real service over real HTTP (status codes, error bodies, state over
time), built from the service's public docs. The production image does not ship this
package (``.dockerignore`` leaves it out) and ``opsbot serve`` never imports it.
"""
