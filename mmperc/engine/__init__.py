"""Engine components (hooks)."""
from .hooks import SafeCheckpointHook

__all__ = ['SafeCheckpointHook']
