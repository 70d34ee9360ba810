"""Adapters implement the ports in mlops_kit.ports: local (embedded default) and aws."""
