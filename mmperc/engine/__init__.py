"""Engine components (hooks)."""
from .hooks import SafeCheckpointHook, SyncBuffersEveryIterHook, decode_message_hub, encode_message_hub

__all__ = ['SafeCheckpointHook', 'SyncBuffersEveryIterHook', 'decode_message_hub', 'encode_message_hub']
