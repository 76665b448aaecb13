"""What the verb modules of the CLI (`cli`, `cli_explore`) share: the one-line user error, the
data flag's help text, and loading a checkpoint for a verb."""
from __future__ import annotations

import argparse

from .config import SYNTHETIC, AnimeganError

DATA_HELP = f"folder of images, .zip, or '{SYNTHETIC}' (the built-in set)"


class UserError(AnimeganError):
    """A mistake in the command line; `cli.main` prints it as one line and exits 2."""


def load_for_verb(args: argparse.Namespace, with_d: bool = False):
    """The checkpoint of `--checkpoint` on `--device` (with its discriminator when asked)."""
    from .checkpoint import load_generator
    return load_generator(args.checkpoint, device=args.device, with_discriminator=with_d)
