"""Re-save a checkpoint you trust so that it loads with ``torch.load(weights_only=True)``.

Only for files from a source you trust: reading the input unpickles arbitrary objects.
The output keeps every key, with mmengine's message hub stored as tensors and numpy values in
``meta`` as tensors or Python scalars (see ``mmperc.engine.SafeCheckpointHook``). If anything is
still outside the allow-list, nothing is written.
"""
import argparse
import os

import torch

import mmperc  # noqa: F401
from mmperc.engine.hooks.safe_checkpoint_hook import SafeCheckpointHook


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='checkpoint to convert')
    parser.add_argument('dst', help='where to write the safe checkpoint')
    parser.add_argument('--trust', action='store_true', help='confirm that you trust SRC (required)')
    args = parser.parse_args()
    if not args.trust:
        parser.error('reading SRC can run arbitrary code: pass --trust only for a file you trust')
    checkpoint = torch.load(args.src, map_location='cpu', weights_only=False)
    if isinstance(checkpoint, dict):
        SafeCheckpointHook().before_save_checkpoint(None, checkpoint)
    partial = f'{args.dst}.partial'
    torch.save(checkpoint, partial)
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(partial)
    if unsafe:
        os.remove(partial)
        raise SystemExit(f'{args.src} holds objects outside the allow-list that it cannot convert: {unsafe}; '
                         f'nothing written to {args.dst}')
    os.replace(partial, args.dst)
    print(f'wrote {args.dst}')


if __name__ == '__main__':
    main()
