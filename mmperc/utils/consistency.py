"""Check that frozen networks (teacher, loss network) are identical on every rank."""
import hashlib
from typing import Iterable

import torch
import torch.distributed as dist
from mmengine.logging import print_log


def tensors_digest(tensors: Iterable[torch.Tensor]) -> str:
    """A SHA-256 over the bytes, dtypes and shapes of ``tensors``, in order."""
    sha = hashlib.sha256()
    for tensor in tensors:
        tensor = tensor.detach().cpu().contiguous()
        sha.update(f'{tuple(tensor.shape)}{tensor.dtype}'.encode())
        sha.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b'')
    return sha.hexdigest()[:16]


def check_same_on_all_ranks(name: str, digest: str) -> None:
    """Raise ``RuntimeError`` if ``digest`` differs between ranks; log it either way.

    A no-op gather when no process group is initialised.
    """
    if not (dist.is_available() and dist.is_initialized()):
        print_log(f'{name} digest {digest}', logger='current')
        return
    digests = [None] * dist.get_world_size()
    dist.all_gather_object(digests, digest)
    if len(set(digests)) != 1:
        raise RuntimeError(
            f'{name} differs between ranks (digests {digests}): every rank must load the same '
            'teacher checkpoint and use the same loss seed')
    print_log(f'{name} digest {digest} identical on {len(digests)} ranks', logger='current')
