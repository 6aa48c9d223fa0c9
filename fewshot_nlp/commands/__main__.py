"""``python -m fewshot_nlp.commands``: the ``fewshot-nlp`` command."""

import sys

from . import main

sys.exit(main())
