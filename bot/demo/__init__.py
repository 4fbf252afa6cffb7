"""In-process demo infrastructure (fake cloud APIs) so opsbot can be tried and tested without real clusters."""
