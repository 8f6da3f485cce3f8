"""Real servers for the tests, each run from its own cached virtualenv on loopback."""
