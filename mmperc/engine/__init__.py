"""Engine components (hooks)."""
from .hooks import SafeCheckpointHook, decode_message_hub, encode_message_hub

__all__ = ['SafeCheckpointHook', 'decode_message_hub', 'encode_message_hub']
