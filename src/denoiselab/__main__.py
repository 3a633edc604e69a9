"""``python -m denoiselab``: the command line, as torchrun starts it (``torchrun ... -m denoiselab train``)."""

import sys

from .cli import main

sys.exit(main())
