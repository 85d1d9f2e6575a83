"""Hostile: kills its process while it is being imported, every time."""
import os

os._exit(3)
