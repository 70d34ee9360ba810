"""Cloud emulators on one machine: Azurite for the Azure backend (azurite.py)."""
