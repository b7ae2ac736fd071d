"""Security checks: who may do what, secrets never shown, limits that hold under load."""
