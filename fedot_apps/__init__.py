"""Flower apps wiring run config to fedot's library calls (model owner = ServerApp, data owners = ClientApp)."""
