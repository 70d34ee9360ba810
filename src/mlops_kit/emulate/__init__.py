"""Clouds on one machine: moto server + pumps + gateway for AWS (emulator.py); Azurite, the
Azure Storage emulator, installed and run by azurite.py."""
