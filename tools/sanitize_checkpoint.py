"""Re-save a checkpoint you trust so that it loads with ``torch.load(weights_only=True)``.

Only for files from a source you trust: reading the input unpickles arbitrary objects.
The output keeps ``state_dict``, ``optimizer``, ``param_schedulers`` and ``meta``, with
mmengine's message hub stored as tensors (see ``mmperc.engine.SafeCheckpointHook``).
"""
import argparse

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
    torch.save(checkpoint, args.dst)
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(args.dst)
    if unsafe:
        raise SystemExit(f'{args.dst} still holds objects outside the allow-list: {unsafe}')
    print(f'wrote {args.dst}')


if __name__ == '__main__':
    main()
