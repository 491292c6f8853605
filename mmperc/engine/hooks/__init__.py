"""Hooks."""
from .safe_checkpoint_hook import SafeCheckpointHook, decode_message_hub, encode_message_hub
from .sync_buffers_hook import SyncBuffersEveryIterHook

__all__ = ['SafeCheckpointHook', 'SyncBuffersEveryIterHook', 'decode_message_hub', 'encode_message_hub']
